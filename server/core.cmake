# server/core.cmake — keel_server_core: the node (raft core + store + disk
# thread + peer transport on one loop), the raft log view over the store,
# the raft message codec; the etcd KV / Status / MemberList services
# (svc_kv) with validation on write under /flags/ (kv_flags); the HTTP
# endpoints' reads over the node (http_node_read); and the keeld program.
add_library(keel_server_core STATIC
  ${CMAKE_CURRENT_LIST_DIR}/node.c
  ${CMAKE_CURRENT_LIST_DIR}/node_apply.c
  ${CMAKE_CURRENT_LIST_DIR}/node_standin.c
  ${CMAKE_CURRENT_LIST_DIR}/metrics.c
  ${CMAKE_CURRENT_LIST_DIR}/raft_codec.c
  ${CMAKE_CURRENT_LIST_DIR}/raft_storage_lmdb.c
  ${CMAKE_CURRENT_LIST_DIR}/svc_kv.c
  ${CMAKE_CURRENT_LIST_DIR}/kv_flags.c
  ${CMAKE_CURRENT_LIST_DIR}/http_node_read.c)
target_include_directories(keel_server_core PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(keel_server_core PUBLIC keel_server_node keel_raft
                      keel_store keel_server_apply keel_server_net
                      keel_server_http keel_proto_peer keel_flags
                      keel_common)

add_executable(keeld ${CMAKE_CURRENT_LIST_DIR}/keeld.c)
target_link_libraries(keeld PRIVATE keel_server_core keel_server_net)
