# client/net.cmake — keel_client_net: the gRPC client transport (nghttp2
# client session over libuv TCP) that libkeel's etcd v3 client is built on.
add_library(keel_client_net STATIC ${CMAKE_CURRENT_LIST_DIR}/grpc_client.c)
target_include_directories(keel_client_net PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(keel_client_net PUBLIC keel_common keel::uv
                      keel::nghttp2)
