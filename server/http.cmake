# server/http.cmake — keel_server_http: the plain-HTTP endpoints of the client
# port: Spring Cloud Config-compatible /config (http_config.c) and OFREP
# (http_ofrep.c), reading the store through struct http_kv_reader.
add_library(keel_server_http STATIC
  ${CMAKE_CURRENT_LIST_DIR}/http_config.c
  ${CMAKE_CURRENT_LIST_DIR}/http_ofrep.c)
target_include_directories(keel_server_http PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(keel_server_http PUBLIC keel_server_net keel_profiles
                      keel_flags keel_store keel_common keel::jansson)
