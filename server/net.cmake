# server/net.cmake — keel_server_net: the client port's transport layer
# (HTTP/2 + gRPC via nghttp2, HTTP/1.1, first-bytes detection, limits,
# graceful shutdown). The etcd v3 services plug their handlers into it.
add_library(keel_server_net STATIC
  ${CMAKE_CURRENT_LIST_DIR}/client_listener.c
  ${CMAKE_CURRENT_LIST_DIR}/grpc_server.c
  ${CMAKE_CURRENT_LIST_DIR}/http1.c)
target_include_directories(keel_server_net PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(keel_server_net PUBLIC keel_common keel::uv
                      keel::nghttp2)
