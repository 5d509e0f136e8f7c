#include "cli/keygen_command.hpp"

#include <iostream>

#include <nlohmann/json.hpp>

#include "messaging/curve_keys.hpp"

namespace syncmesh::cli {

int run_keygen(const keygen_options& o) {
  auto fail = [&](const store::status& st) {
    if (o.json)
      std::cout << nlohmann::json{{"ok", false}, {"error", st.message()}}.dump() << "\n";
    std::cerr << "syncmesh keygen: " << st.message() << "\n";
    return 1;
  };
  auto keys = messaging::generate_curve_key_pair();
  if (!keys)
    return fail(keys.error());
  if (auto st = messaging::write_curve_key_files(o.out, *keys, o.force); !st)
    return fail(st);
  const std::string pub_path = o.out + ".pub";
  if (o.json) {
    std::cout << nlohmann::json{{"ok", true},
                                {"public_key", keys->public_key},
                                {"secret_key_file", o.out},
                                {"public_key_file", pub_path}}
                     .dump()
              << "\n";
  } else {
    std::cout << "Wrote the secret key to " << o.out << " (mode 0600; keep it on this node) and "
              << "the public key to " << pub_path << ".\n"
              << "Public key: " << keys->public_key << "\n"
              << "Put the public key on the allow-list of every node this one connects to.\n";
  }
  return 0;
}

} // namespace syncmesh::cli
