# Every dependency is a Debian bookworm package; scripts/setup installs them.
find_package(Threads REQUIRED)
find_package(leveldb CONFIG REQUIRED)          # leveldb::leveldb (libleveldb-dev)
find_package(Snappy CONFIG QUIET)              # leveldb links against it
find_package(msgpack CONFIG REQUIRED)          # msgpackc-cxx (libmsgpack-cxx-dev)
find_package(ZLIB REQUIRED)                    # crc32 for value envelopes
find_package(Boost 1.74 REQUIRED COMPONENTS unit_test_framework)

# LevelDB's in-memory Env ships as a static helper library without a target.
find_path(LEVELDB_MEMENV_INCLUDE_DIR leveldb/helpers/memenv.h REQUIRED)
find_library(LEVELDB_MEMENV_LIBRARY memenv REQUIRED)
add_library(leveldb_memenv STATIC IMPORTED GLOBAL)
set_target_properties(leveldb_memenv PROPERTIES
  IMPORTED_LOCATION "${LEVELDB_MEMENV_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${LEVELDB_MEMENV_INCLUDE_DIR}"
  INTERFACE_LINK_LIBRARIES leveldb::leveldb)

if(SYNCMESH_BUILD_BENCHMARKS)
  find_package(benchmark CONFIG REQUIRED)      # benchmark::benchmark (libbenchmark-dev)
endif()
