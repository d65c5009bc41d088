# client/flags.cmake — keel_client_flags: libkeel's feature-flag cache
# (keel_flags.h), a flag set kept current by a watch and evaluated locally.
add_library(keel_client_flags STATIC ${CMAKE_CURRENT_LIST_DIR}/keel_flags_cache.c)
target_include_directories(keel_client_flags PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(keel_client_flags PUBLIC keel_client keel_flags)
