# server/maint.cmake — keel_server_maint: the etcd Maintenance service but
# Status (Alarm, Defragment, Hash, HashKV, Snapshot, MoveLeader), /metrics,
# automatic and physical compaction (svc_maint.h); linked into keeld.
add_library(keel_server_maint STATIC ${CMAKE_CURRENT_LIST_DIR}/svc_maint.c)
target_include_directories(keel_server_maint PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(keel_server_maint PUBLIC keel_server_core keel_server_net
                      keel_server_apply keel_server_watch keel_store
                      keel_common PRIVATE keel::openssl)
target_link_libraries(keeld PRIVATE keel_server_maint)

# keel_server_restore: a keeld data directory from a snapshot stream
# (restore.h), for `keel snapshot restore` (decision 0922: the CLI's one
# link into server/, as etcdctl links etcd's own packages for restore).
add_library(keel_server_restore STATIC ${CMAKE_CURRENT_LIST_DIR}/restore.c)
target_include_directories(keel_server_restore PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(keel_server_restore PUBLIC keel_server_node keel_store
                      keel_proto_peer keel_common)
