// Writes the seed corpus of the peer frame fuzz target: valid frames of every
// message type from a fixed seed, plus a few near misses (another version, an
// unknown type, non-canonical forms) that start the fuzzer at the decoder's
// edges. Usage: make_peer_corpus DIR (fuzz/corpus/peer_frame in the repo).

#include <cstdio>
#include <fstream>
#include <string>

#include "messaging/peer_protocol.hpp"
#include "tests/messaging/peer_message_gen.hpp"

namespace peer = syncmesh::messaging::peer;

namespace {

bool write(const std::string& dir, const std::string& name, const std::string& bytes) {
  std::ofstream out(dir + "/" + name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_peer_corpus DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  syncmesh::test::peer_message_gen gen(20240601);  // fixed: the corpus is committed
  int written = 0;
  for (int type = 1; type <= peer::message_type_max; ++type) {
    for (int n = 0; n < 4; ++n) {
      auto m = gen.of_type(type);
      auto frame = peer::encode(m);
      if (frame.size() > 8192) {  // keep the corpus small; the fuzzer grows frames itself
        --n;
        continue;
      }
      auto name = std::string(peer::to_string(peer::type_of(m))) + "-" + std::to_string(n);
      if (!write(dir, name, frame)) {
        std::fprintf(stderr, "make_peer_corpus: cannot write %s/%s\n", dir.c_str(), name.c_str());
        return 1;
      }
      ++written;
    }
  }
  // Near misses, written by hand: [2, 12, 5] (a ping of syncmesh/2),
  // [1, 15] (an unknown type), [1, 12, 0xcc 0x05] (a wide nonce).
  const std::pair<const char*, std::string> misses[] = {
    {"miss-version", std::string("\x93\x02\x0c\x05", 4)},
    {"miss-type", std::string("\x92\x01\x0f", 3)},
    {"miss-wide-nonce", std::string("\x93\x01\x0c\xcc\x05", 5)},
  };
  for (const auto& [name, bytes] : misses) {
    if (!write(dir, name, bytes))
      return 1;
    ++written;
  }
  std::printf("make_peer_corpus: wrote %d frames to %s\n", written, dir.c_str());
  return 0;
}
