# node.cmake — keel_server_node: keeld's configuration, peer transport and
# disk thread. The raft core, the store and the client port are wired to it
# by keeld's main program.
add_library(keel_server_node STATIC
  ${CMAKE_CURRENT_LIST_DIR}/config.c
  ${CMAKE_CURRENT_LIST_DIR}/disk_thread.c
  ${CMAKE_CURRENT_LIST_DIR}/peer.c)
target_include_directories(keel_server_node PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(keel_server_node PUBLIC keel::uv keel::yaml keel_proto_peer keel_common
                      Threads::Threads
                      PRIVATE keel::openssl) # SHA-256 for member/cluster ids
