// libFuzzer target for the peer protocol's frame decoder (messaging/
// peer_protocol.cpp). Built with clang by fuzz/CMakeLists.txt; run with
// `./dev fuzz [seconds]` or `ctest -L fuzz`. The seed corpus is
// fuzz/corpus/peer_frame (regenerate with make_peer_corpus).
//
// Properties checked on every input, beyond "no crash, no sanitizer report":
// a refusal carries a sentence, and an accepted frame is canonical — it
// encodes back to exactly the input — and decodes again to the same bytes.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "messaging/peer_protocol.hpp"

namespace peer = syncmesh::messaging::peer;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const peer::limits lim = [] {
    peer::limits l;
    l.frame_bytes_max = std::size_t{1} << 15;  // half of fuzz/run's -max_len: both sides of the bound
    return l;
  }();
  const std::string_view frame(reinterpret_cast<const char*>(data), size);
  auto r = peer::decode(frame, lim);
  if (!r.is_ok()) {
    if (r.error().message.empty())
      __builtin_trap();
    (void)peer::error_for(r.error());
    return 0;
  }
  (void)peer::describe(r.value());
  const std::string again = peer::encode(r.value());
  if (again != frame)
    __builtin_trap();  // accepted a frame that is not the message's one encoding
  auto twice = peer::decode(again, lim);
  if (!twice.is_ok() || peer::encode(twice.value()) != again)
    __builtin_trap();
  return 0;
}
