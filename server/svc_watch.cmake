# server/svc_watch.cmake — keel_server_watch: the etcd v3 Watch service
# (svc_watch.h) over the watch hub; linked into keeld.
add_library(keel_server_watch STATIC ${CMAKE_CURRENT_LIST_DIR}/svc_watch.c)
target_include_directories(keel_server_watch PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(keel_server_watch PUBLIC keel_server_core keel_server_net
                      keel_server_apply keel_store keel_watch keel_common)
target_link_libraries(keeld PRIVATE keel_server_watch)
