# bench/store.cmake — keel-store-bench: the store alone, no raft and no
# network. It prints figures (docs/BENCHMARKS.md keeps them with the
# command); it is not a test.
add_executable(keel-store-bench ${CMAKE_CURRENT_LIST_DIR}/store-bench.c)
target_link_libraries(keel-store-bench PRIVATE keel_store)
