# store/watch.cmake — the watch hub as its own library: it depends on no
# LMDB (it reads history through a callback the store implements), so the
# hub, its tests and its benchmark build without the rest of store/.
add_library(keel_watch STATIC ${CMAKE_CURRENT_LIST_DIR}/watch_hub.c)
target_include_directories(keel_watch PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(keel_watch PUBLIC keel_common)
