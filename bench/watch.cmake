# bench/watch.cmake — keel-watch-bench: watch hub fan-out and memory figures
# (docs/BENCHMARKS.md, "watch hub"). A benchmark, not a test.
add_executable(keel-watch-bench ${CMAKE_CURRENT_LIST_DIR}/watch-bench.c)
target_link_libraries(keel-watch-bench PRIVATE keel_watch)
