# Test registration helpers. Every test carries a label naming its layer
# (unit, sim, e2e, jepsen, style, smoke) so `ctest -L <layer>` selects it.

# keel_unit_test(NAME SOURCES src... LIBS lib... [LABELS extra...] [TIMEOUT s])
# Builds a cmocka test program and registers it with the label "unit".
function(keel_unit_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} keel::cmocka)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                                           ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "unit;${T_LABELS}"
                                          TIMEOUT ${T_TIMEOUT})
endfunction()

# keel_script_test(NAME COMMAND cmd... LABELS label... [TIMEOUT s])
# Registers an existing command (a shell script, a program with arguments).
function(keel_script_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "COMMAND;LABELS" ${ARGN})
  add_test(NAME ${name} COMMAND ${T_COMMAND})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}"
                                          TIMEOUT ${T_TIMEOUT})
endfunction()
