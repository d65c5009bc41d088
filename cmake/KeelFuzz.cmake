# KeelFuzz.cmake — the libFuzzer build (option KEEL_FUZZ, decision 0700).
#
# With -DKEEL_FUZZ=ON and clang, the WHOLE build directory is compiled with
# -fsanitize=fuzzer-no-link,address,undefined: every library a fuzz target
# links is then instrumented for coverage and checked by ASan and UBSan, and
# the other programs of that build (unit tests) simply become sanitizer
# builds. Only the fuzz targets link libFuzzer (-fsanitize=fuzzer). Use a
# build directory of its own (scripts/fuzz.sh uses build-fuzz):
#
#   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DKEEL_FUZZ=ON
#   cmake --build build-fuzz -j2 --target keel_fuzz_targets
#
# With another compiler KEEL_FUZZ only warns and tests/fuzz adds nothing.
#
# keel_fuzz_target(NAME SOURCES src... LIBS lib... [MAX_LEN bytes])
#   Builds ${CMAKE_BINARY_DIR}/fuzz/NAME from a file defining
#   LLVMFuzzerTestOneInput, and registers two ctest tests labelled "fuzz":
#     NAME_corpus  replays every file of tests/fuzz/corpus/NAME (regression)
#     NAME_short   fuzzes for KEEL_FUZZ_SECONDS (default 10) from that corpus
#   The corpus folder must exist and hold at least one seed. A libFuzzer
#   dictionary tests/fuzz/NAME.dict, if present, is used by the fuzzing run
#   (and by scripts/fuzz.sh).

set(KEEL_FUZZ_ENABLED OFF)
if(KEEL_FUZZ)
  if(CMAKE_C_COMPILER_ID MATCHES "Clang")
    set(KEEL_FUZZ_ENABLED ON)
    add_compile_options(-fsanitize=fuzzer-no-link,address,undefined
                        -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
    add_link_options(-fsanitize=address,undefined)
  else()
    message(WARNING "KEEL_FUZZ needs clang (-DCMAKE_C_COMPILER=clang); "
                    "no fuzz targets are built with ${CMAKE_C_COMPILER_ID}")
  endif()
endif()

set(KEEL_FUZZ_SECONDS 10 CACHE STRING
    "Seconds each fuzz target runs in the ctest 'fuzz' label")

if(KEEL_FUZZ_ENABLED AND NOT TARGET keel_fuzz_targets)
  add_custom_target(keel_fuzz_targets)
endif()

function(keel_fuzz_target name)
  if(NOT KEEL_FUZZ_ENABLED)
    return()
  endif()
  cmake_parse_arguments(F "" "MAX_LEN" "SOURCES;LIBS" ${ARGN})
  if(NOT F_MAX_LEN)
    set(F_MAX_LEN 4096)
  endif()
  set(corpus ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${name})
  if(NOT IS_DIRECTORY ${corpus})
    message(FATAL_ERROR "keel_fuzz_target(${name}): no seed corpus ${corpus}")
  endif()
  add_executable(${name} ${F_SOURCES})
  target_link_libraries(${name} PRIVATE ${F_LIBS})
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                                           ${CMAKE_BINARY_DIR}/fuzz)
  add_dependencies(keel_fuzz_targets ${name})
  set(run ${CMAKE_SOURCE_DIR}/tests/fuzz/run-target.sh)
  set(work ${CMAKE_BINARY_DIR}/fuzz-work/${name})
  add_test(NAME ${name}_corpus
           COMMAND ${run} replay $<TARGET_FILE:${name}> ${corpus} ${work}/replay)
  set(dict ${CMAKE_SOURCE_DIR}/tests/fuzz/${name}.dict)
  if(NOT EXISTS ${dict})
    set(dict "")
  endif()
  add_test(NAME ${name}_short
           COMMAND ${run} fuzz $<TARGET_FILE:${name}> ${corpus} ${work}/short
                   ${KEEL_FUZZ_SECONDS} ${F_MAX_LEN} ${dict})
  math(EXPR timeout "${KEEL_FUZZ_SECONDS} + 60")
  set_tests_properties(${name}_corpus PROPERTIES LABELS fuzz TIMEOUT 60)
  set_tests_properties(${name}_short PROPERTIES LABELS fuzz TIMEOUT ${timeout})
endfunction()
