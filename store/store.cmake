# store/store.cmake — keel_store: raft log storage and the MVCC key-value
# state machine on LMDB. Links LMDB, keel_common, and OpenSSL's libcrypto
# for SHA-256 only (docs/decisions/0200-store-links-libcrypto-for-sha256.md).
# Never raft/, server/ or generated protobuf code.
pkg_check_modules(libcrypto REQUIRED IMPORTED_TARGET GLOBAL libcrypto)
add_library(keel_store STATIC
  ${CMAKE_CURRENT_LIST_DIR}/store.c
  ${CMAKE_CURRENT_LIST_DIR}/store_kv.c
  ${CMAKE_CURRENT_LIST_DIR}/store_snap.c
  ${CMAKE_CURRENT_LIST_DIR}/store_lessor.c
  ${CMAKE_CURRENT_LIST_DIR}/store_watch.c)
target_include_directories(keel_store PUBLIC ${CMAKE_CURRENT_LIST_DIR})
# keel_watch (the hub, no LMDB) for store_watch.h: the store implements the
# hub's history callback.
target_link_libraries(keel_store PUBLIC keel_common keel_watch keel::lmdb
                      PRIVATE PkgConfig::libcrypto Threads::Threads)
