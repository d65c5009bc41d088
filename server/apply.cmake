# server/apply.cmake — keel_server_apply: the translation between etcd's
# protobuf messages and the store (validation, error table, responses) and
# the apply step of committed log entries.
add_library(keel_server_apply STATIC
  ${CMAKE_CURRENT_LIST_DIR}/etcd_codec.c
  ${CMAKE_CURRENT_LIST_DIR}/apply.c)
target_include_directories(keel_server_apply PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(keel_server_apply PUBLIC keel_store keel_proto_peer
                      keel_proto_etcd keel_common)
