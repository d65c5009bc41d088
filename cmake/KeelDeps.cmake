# Finds the Debian-packaged dependencies (scripts/install-deps.sh installs
# them) and exposes each as an imported target named keel::<dep>.

find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

function(keel_pkg target module)
  pkg_check_modules(${target} REQUIRED IMPORTED_TARGET ${module})
  add_library(keel::${target} ALIAS PkgConfig::${target})
endfunction()

keel_pkg(uv libuv)
keel_pkg(protobufc libprotobuf-c)
keel_pkg(yaml yaml-0.1)
keel_pkg(nghttp2 libnghttp2)
keel_pkg(jansson jansson)
keel_pkg(openssl openssl)
keel_pkg(cmocka cmocka)

# LMDB ships no pkg-config file on Debian 12.
find_path(LMDB_INCLUDE_DIR lmdb.h REQUIRED)
find_library(LMDB_LIBRARY lmdb REQUIRED)
add_library(keel::lmdb INTERFACE IMPORTED)
set_target_properties(keel::lmdb PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES ${LMDB_INCLUDE_DIR}
  INTERFACE_LINK_LIBRARIES ${LMDB_LIBRARY})

find_program(PROTOC_C protoc-c REQUIRED)
