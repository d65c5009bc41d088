# bench/flag-change.cmake — keel-flag-change-bench: time from a flag write on
# one node to the change in a libkeel flag cache watching through another
# (docs/BENCHMARKS.md). A benchmark, not a test.
add_executable(keel-flag-change-bench
               ${CMAKE_CURRENT_LIST_DIR}/flag-change-bench.c)
target_link_libraries(keel-flag-change-bench PRIVATE keel_client_flags)
