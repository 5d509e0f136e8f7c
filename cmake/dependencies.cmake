# Every dependency is a Debian bookworm package; scripts/setup installs them.
find_package(Threads REQUIRED)
find_package(leveldb CONFIG REQUIRED)          # leveldb::leveldb (libleveldb-dev)
find_package(Snappy CONFIG QUIET)              # leveldb links against it
find_package(msgpack CONFIG REQUIRED)          # msgpackc-cxx (libmsgpack-cxx-dev)
find_package(ZLIB REQUIRED)                    # crc32: what the envelope checksum must equal (tests)
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

find_package(cppzmq CONFIG REQUIRED)           # cppzmq (cppzmq-dev, libzmq3-dev)
find_package(nlohmann_json CONFIG REQUIRED)    # nlohmann_json::nlohmann_json
find_package(tomlplusplus CONFIG REQUIRED)     # tomlplusplus::tomlplusplus
find_package(spdlog CONFIG REQUIRED)           # spdlog::spdlog

# CAF 0.17.6 (libcaf-dev) ships no CMake package config.
find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY caf_core REQUIRED)
add_library(caf_core SHARED IMPORTED GLOBAL)
set_target_properties(caf_core PROPERTIES
  IMPORTED_LOCATION "${CAF_CORE_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}"
  INTERFACE_LINK_LIBRARIES Threads::Threads)
add_library(caf::core ALIAS caf_core)
