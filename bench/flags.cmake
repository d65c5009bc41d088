# keel-flags-bench: local flag evaluations per second (fractional rollout +
# three rules). A benchmark: run by hand, figures in docs/BENCHMARKS.md.
find_package(Threads REQUIRED)
add_executable(keel-flags-bench ${CMAKE_CURRENT_LIST_DIR}/flags-bench.c)
target_link_libraries(keel-flags-bench PRIVATE keel_flags Threads::Threads)
