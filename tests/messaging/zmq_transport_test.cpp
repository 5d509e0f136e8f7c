#include <boost/test/unit_test.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "messaging/curve_keys.hpp"
#include "messaging/zmq_transport.hpp"
#include "scenarios/fault_proxy.hpp"

using namespace syncmesh::messaging;
namespace fs = std::filesystem;
using std::chrono::milliseconds;

namespace {

// Real sockets: the longest any expected event may take on a loaded machine.
constexpr milliseconds event_wait_max{15000};

// Everything one transport reported, guarded for the I/O thread; tests wait
// on the condition variable, never by sleeping.
class recorder {
public:
  transport_handler handler() {
    transport_handler h;
    h.connected = [this](const std::string& peer) {
      note([&] { connected.push_back(peer); });
    };
    h.disconnected = [this](const std::string& peer, const std::string& reason) {
      note([&] { disconnected.push_back(peer + ": " + reason); });
    };
    h.received = [this](const std::string& peer, std::string frame) {
      note([&] { frames.emplace_back(peer, std::move(frame)); });
    };
    return h;
  }

  std::function<void(const std::string&)> logger() {
    return [this](const std::string& sentence) { note([&] { log.push_back(sentence); }); };
  }

  /// Waits until `condition` (read under the lock) holds; false on timeout.
  template <class Condition>
  bool wait(Condition condition, milliseconds timeout = event_wait_max) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return condition(*this); });
  }

  /// Reads under the lock.
  template <class Reader>
  auto read(Reader reader) {
    std::lock_guard<std::mutex> lock(mutex_);
    return reader(*this);
  }

  bool logged(const std::string& part) const {
    for (const auto& line : log)
      if (line.find(part) != std::string::npos)
        return true;
    return false;
  }

  std::vector<std::string> connected;
  std::vector<std::string> disconnected;
  std::vector<std::pair<std::string, std::string>> frames;
  std::vector<std::string> log;

private:
  template <class Change>
  void note(Change change) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      change();
    }
    changed_.notify_all();
  }

  std::mutex mutex_;
  std::condition_variable changed_;
};

// A transport with its recorder; the recorder outlives the transport.
struct node {
  recorder seen;
  std::unique_ptr<zmq_transport> t;

  explicit node(zmq_transport_options o) {
    o.log = seen.logger();
    auto started = zmq_transport::start(std::move(o));
    BOOST_TEST_REQUIRE(started.is_ok(), started.error().to_string());
    t = std::move(*started);
    t->set_handler(seen.handler());
  }
};

zmq_transport_options options(const std::string& id, const std::string& bind = "") {
  zmq_transport_options o;
  o.node_id = id;
  o.bind_endpoint = bind;
  return o;
}

curve_key_pair fresh_keys() {
  auto k = generate_curve_key_pair();
  BOOST_TEST_REQUIRE(k.is_ok(), k.error().to_string());
  return *k;
}

bool has(const std::vector<std::string>& v, const std::string& s) {
  for (const auto& x : v)
    if (x == s)
      return true;
  return false;
}

// Connects `client` to `server` and waits until both report the link.
void link(node& client, node& server, const std::string& server_key = "") {
  const std::string server_id = server.t->local_id();
  BOOST_TEST_REQUIRE(
      client.t->add_peer(server_id, {server.t->bound_endpoint(), server_key}).is_ok());
  client.t->connect(server_id);
  const std::string client_id = client.t->local_id();
  BOOST_TEST_REQUIRE(client.seen.wait([&](recorder& r) { return has(r.connected, server_id); }));
  BOOST_TEST_REQUIRE(server.seen.wait([&](recorder& r) { return has(r.connected, client_id); }));
}

class temp_dir {
public:
  temp_dir() {
    std::string pattern = (fs::temp_directory_path() / "syncmesh-keys-XXXXXX").string();
    BOOST_TEST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

private:
  fs::path path_;
};

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  BOOST_TEST_REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

} // namespace

BOOST_AUTO_TEST_SUITE(zmq_transport_suite)

BOOST_AUTO_TEST_CASE(libzmq_on_this_machine_has_curve) { BOOST_TEST(curve_available()); }

BOOST_AUTO_TEST_CASE(a_bind_to_port_0_reports_the_port_the_os_chose) {
  node b(options("b", "tcp://127.0.0.1:0"));
  const std::string ep = b.t->bound_endpoint();
  BOOST_TEST(ep.rfind("tcp://127.0.0.1:", 0) == 0);
  BOOST_TEST(ep != "tcp://127.0.0.1:0");
  BOOST_TEST(std::stoi(ep.substr(ep.rfind(':') + 1)) > 0);
}

BOOST_AUTO_TEST_CASE(two_transports_exchange_frames_both_ways_in_order) {
  node b(options("b", "tcp://127.0.0.1:0"));
  node a(options("a"));
  link(a, b);

  constexpr int n = 200;
  std::vector<std::string> to_b;
  std::vector<std::string> to_a;
  to_b.emplace_back();                               // an empty frame travels as is
  to_b.emplace_back(std::string("\0\x01\xff", 3));  // so do NUL and high bytes
  for (int i = 0; i < n; ++i) {
    to_b.push_back("a->b " + std::to_string(i));
    to_a.push_back("b->a " + std::to_string(i) + std::string(static_cast<std::size_t>(i * 37), 'x'));
  }
  for (const auto& f : to_b)
    BOOST_TEST_REQUIRE(a.t->send("b", f));
  for (const auto& f : to_a)
    BOOST_TEST_REQUIRE(b.t->send("a", f));

  BOOST_TEST_REQUIRE(b.seen.wait([&](recorder& r) { return r.frames.size() == to_b.size(); }));
  BOOST_TEST_REQUIRE(a.seen.wait([&](recorder& r) { return r.frames.size() == to_a.size(); }));
  b.seen.read([&](recorder& r) {
    for (std::size_t i = 0; i < to_b.size(); ++i) {
      BOOST_TEST(r.frames[i].first == "a");
      BOOST_TEST(r.frames[i].second == to_b[i]);
    }
    return 0;
  });
  a.seen.read([&](recorder& r) {
    for (std::size_t i = 0; i < to_a.size(); ++i) {
      BOOST_TEST(r.frames[i].first == "b");
      BOOST_TEST(r.frames[i].second == to_a[i]);
    }
    return 0;
  });
  BOOST_TEST(a.t->counters().frames_sent == to_b.size());
  BOOST_TEST(b.t->counters().frames_received == to_b.size());
  BOOST_TEST(a.t->counters().links_up == 1u);
  BOOST_TEST(b.t->counters().links_up == 1u);
}

BOOST_AUTO_TEST_CASE(send_without_a_link_returns_false) {
  node a(options("a"));
  BOOST_TEST(!a.t->send("nobody", "frame"));
}

BOOST_AUTO_TEST_CASE(connect_to_a_peer_without_an_address_is_reported_with_a_sentence) {
  node a(options("a"));
  a.t->connect("z");
  BOOST_TEST_REQUIRE(a.seen.wait([](recorder& r) { return !r.disconnected.empty(); }));
  a.seen.read([](recorder& r) {
    BOOST_TEST(r.disconnected[0].find("no address is known for peer z") != std::string::npos);
    return 0;
  });
}

BOOST_AUTO_TEST_CASE(the_server_reports_a_disconnect_when_the_client_transport_is_destroyed) {
  node b(options("b", "tcp://127.0.0.1:0"));
  auto a = std::make_unique<node>(options("a"));
  link(*a, b);
  a.reset();
  BOOST_TEST_REQUIRE(b.seen.wait([](recorder& r) { return !r.disconnected.empty(); }));
  b.seen.read([](recorder& r) {
    BOOST_TEST(r.disconnected[0].rfind("a: ", 0) == 0);
    return 0;
  });
  BOOST_TEST(!b.t->send("a", "too late"));
}

BOOST_AUTO_TEST_CASE(the_client_reports_a_disconnect_when_the_server_transport_is_destroyed) {
  auto b = std::make_unique<node>(options("b", "tcp://127.0.0.1:0"));
  node a(options("a"));
  link(a, *b);
  b.reset();
  BOOST_TEST_REQUIRE(a.seen.wait([](recorder& r) { return !r.disconnected.empty(); }));
  a.seen.read([](recorder& r) {
    BOOST_TEST(r.disconnected[0].find("reconnecting") != std::string::npos);
    return 0;
  });
  BOOST_TEST(!a.t->send("b", "too late"));
}

BOOST_AUTO_TEST_CASE(the_client_links_again_when_a_server_comes_back_on_the_same_port) {
  auto b = std::make_unique<node>(options("b", "tcp://127.0.0.1:0"));
  const std::string ep = b->t->bound_endpoint();
  node a(options("a"));
  link(a, *b);
  b.reset();
  BOOST_TEST_REQUIRE(a.seen.wait([](recorder& r) { return !r.disconnected.empty(); }));
  node b2(options("b", ep));
  BOOST_TEST_REQUIRE(a.seen.wait([](recorder& r) { return r.connected.size() == 2; }));
  BOOST_TEST_REQUIRE(a.t->send("b", "again"));
  BOOST_TEST_REQUIRE(b2.seen.wait([](recorder& r) { return r.frames.size() == 1; }));
}

BOOST_AUTO_TEST_CASE(heartbeats_report_a_silent_partition_and_the_link_returns_after_heal) {
  auto bo = options("b", "tcp://127.0.0.1:0");
  bo.heartbeat_interval = milliseconds(100);
  bo.heartbeat_timeout = milliseconds(500);
  node b(bo);
  const std::string ep = b.t->bound_endpoint();
  const auto port = static_cast<std::uint16_t>(std::stoi(ep.substr(ep.rfind(':') + 1)));
  auto proxy = syncmesh::scenarios::fault_proxy::start("127.0.0.1", port, 1);
  BOOST_TEST_REQUIRE(proxy.is_ok(), proxy.error().to_string());
  auto ao = options("a");
  ao.heartbeat_interval = milliseconds(100);
  ao.heartbeat_timeout = milliseconds(500);
  node a(ao);
  BOOST_TEST_REQUIRE(
      a.t->add_peer("b", {"tcp://127.0.0.1:" + std::to_string((*proxy)->port()), ""}).is_ok());
  a.t->connect("b");
  BOOST_TEST_REQUIRE(a.seen.wait([](recorder& r) { return r.connected.size() == 1; }));
  BOOST_TEST_REQUIRE(b.seen.wait([](recorder& r) { return r.connected.size() == 1; }));

  // The TCP connections stay open; only heartbeats can tell the peer is gone.
  (*proxy)->partition();
  BOOST_TEST_REQUIRE(a.seen.wait([](recorder& r) { return r.disconnected.size() == 1; }));
  BOOST_TEST_REQUIRE(b.seen.wait([](recorder& r) { return r.disconnected.size() == 1; }));
  (*proxy)->heal();
  BOOST_TEST_REQUIRE(a.seen.wait([](recorder& r) { return r.connected.size() == 2; }));
  BOOST_TEST_REQUIRE(b.seen.wait([](recorder& r) { return r.connected.size() == 2; }));
  BOOST_TEST_REQUIRE(a.t->send("b", "after the partition"));
  BOOST_TEST_REQUIRE(b.seen.wait([](recorder& r) { return !r.frames.empty(); }));
}

BOOST_AUTO_TEST_CASE(disconnect_closes_the_link_on_both_sides) {
  node b(options("b", "tcp://127.0.0.1:0"));
  node a(options("a"));
  link(a, b);
  a.t->disconnect("b");
  BOOST_TEST_REQUIRE(a.seen.wait([](recorder& r) { return !r.disconnected.empty(); }));
  BOOST_TEST_REQUIRE(b.seen.wait([](recorder& r) { return !r.disconnected.empty(); }));
  BOOST_TEST(!a.t->send("b", "x"));
  BOOST_TEST(!b.t->send("a", "x"));
}

BOOST_AUTO_TEST_CASE(a_server_side_disconnect_detaches_the_client_until_it_connects_again) {
  node b(options("b", "tcp://127.0.0.1:0"));
  node a(options("a"));
  link(a, b);
  b.t->disconnect("a");
  BOOST_TEST_REQUIRE(a.seen.wait([](recorder& r) { return !r.disconnected.empty(); }));
  BOOST_TEST_REQUIRE(b.seen.wait([](recorder& r) { return !r.disconnected.empty(); }));
  a.t->connect("b");
  BOOST_TEST_REQUIRE(a.seen.wait([](recorder& r) { return r.connected.size() == 2; }));
  BOOST_TEST_REQUIRE(b.seen.wait([](recorder& r) { return r.connected.size() == 2; }));
  BOOST_TEST_REQUIRE(a.t->send("b", "back"));
  BOOST_TEST_REQUIRE(b.seen.wait([](recorder& r) { return r.frames.size() == 1; }));
}

BOOST_AUTO_TEST_CASE(curve_a_client_with_an_allowed_key_exchanges_frames) {
  const auto server_keys = fresh_keys();
  const auto client_keys = fresh_keys();
  auto so = options("b", "tcp://127.0.0.1:0");
  so.keys = server_keys;
  so.allowed_clients[client_keys.public_key] = "a";
  node b(so);
  auto co = options("a");
  co.keys = client_keys;
  node a(co);
  link(a, b, server_keys.public_key);
  BOOST_TEST_REQUIRE(a.t->send("b", "secret hello"));
  BOOST_TEST_REQUIRE(b.t->send("a", "secret reply"));
  BOOST_TEST_REQUIRE(b.seen.wait([](recorder& r) { return r.frames.size() == 1; }));
  BOOST_TEST_REQUIRE(a.seen.wait([](recorder& r) { return r.frames.size() == 1; }));
  BOOST_TEST(b.seen.read([](recorder& r) { return r.frames[0].second; }) == "secret hello");
  BOOST_TEST(a.seen.read([](recorder& r) { return r.frames[0].second; }) == "secret reply");
  BOOST_TEST(b.t->counters().clients_refused == 0u);
}

BOOST_AUTO_TEST_CASE(curve_a_client_whose_key_is_not_allowed_never_gets_a_frame_through) {
  const auto server_keys = fresh_keys();
  const auto client_keys = fresh_keys();
  auto so = options("b", "tcp://127.0.0.1:0");
  so.keys = server_keys;
  so.allowed_clients[fresh_keys().public_key] = "a";  // some other key
  node b(so);
  auto co = options("a");
  co.keys = client_keys;
  node a(co);
  BOOST_TEST_REQUIRE(a.t->add_peer("b", {b.t->bound_endpoint(), server_keys.public_key}).is_ok());
  a.t->connect("b");
  // The ZAP handler refuses the key and names it; the client hears the refusal.
  BOOST_TEST_REQUIRE(b.seen.wait([&](recorder& r) { return r.logged(client_keys.public_key); }));
  BOOST_TEST(b.t->counters().clients_refused >= 1u);
  BOOST_TEST_REQUIRE(a.seen.wait([](recorder& r) { return r.logged("refused this node's key"); }));
  BOOST_TEST(a.t->counters().handshakes_failed >= 1u);
  BOOST_TEST(!a.t->send("b", "let me in"));
  BOOST_TEST(a.seen.read([](recorder& r) { return r.connected.size(); }) == 0u);
  BOOST_TEST(b.seen.read([](recorder& r) { return r.connected.size() + r.frames.size(); }) == 0u);
  BOOST_TEST(b.t->counters().frames_received == 0u);
}

BOOST_AUTO_TEST_CASE(curve_an_allowed_key_claiming_another_node_id_is_refused) {
  const auto server_keys = fresh_keys();
  const auto client_keys = fresh_keys();
  auto so = options("b", "tcp://127.0.0.1:0");
  so.keys = server_keys;
  so.allowed_clients[client_keys.public_key] = "a";
  node b(so);
  auto co = options("mallory");  // holds a's key, calls itself mallory
  co.keys = client_keys;
  node m(co);
  BOOST_TEST_REQUIRE(m.t->add_peer("b", {b.t->bound_endpoint(), server_keys.public_key}).is_ok());
  m.t->connect("b");
  BOOST_TEST_REQUIRE(b.seen.wait([](recorder& r) { return r.logged("calling itself mallory"); }));
  BOOST_TEST(b.t->counters().impostors_refused >= 1u);
  BOOST_TEST(b.seen.read([](recorder& r) { return r.connected.size(); }) == 0u);
}

BOOST_AUTO_TEST_CASE(curve_a_wrong_server_key_fails_the_handshake) {
  const auto server_keys = fresh_keys();
  const auto client_keys = fresh_keys();
  auto so = options("b", "tcp://127.0.0.1:0");
  so.keys = server_keys;
  so.allowed_clients[client_keys.public_key] = "a";
  node b(so);
  auto co = options("a");
  co.keys = client_keys;
  node a(co);
  BOOST_TEST_REQUIRE(
      a.t->add_peer("b", {b.t->bound_endpoint(), fresh_keys().public_key}).is_ok());
  a.t->connect("b");
  BOOST_TEST_REQUIRE(a.seen.wait([](recorder& r) { return r.logged("the handshake with b"); }));
  BOOST_TEST(a.t->counters().handshakes_failed >= 1u);
  BOOST_TEST(a.seen.read([](recorder& r) { return r.connected.size(); }) == 0u);
  BOOST_TEST(b.seen.read([](recorder& r) { return r.connected.size(); }) == 0u);
  BOOST_TEST(!a.t->send("b", "x"));
}

BOOST_AUTO_TEST_CASE(curve_a_client_without_keys_is_refused_by_a_server_with_keys) {
  auto so = options("b", "tcp://127.0.0.1:0");
  so.keys = fresh_keys();
  node b(so);
  node a(options("a"));
  BOOST_TEST_REQUIRE(a.t->add_peer("b", {b.t->bound_endpoint(), ""}).is_ok());
  a.t->connect("b");
  BOOST_TEST_REQUIRE(a.seen.wait([](recorder& r) { return r.logged("the handshake with b"); }));
  BOOST_TEST(b.seen.read([](recorder& r) { return r.connected.size(); }) == 0u);
}

BOOST_AUTO_TEST_CASE(a_non_loopback_bind_without_keys_is_refused_with_a_sentence) {
  for (const std::string ep : {"tcp://0.0.0.0:0", "tcp://*:0", "tcp://10.1.2.3:0"}) {
    auto r = zmq_transport::start(options("b", ep));
    BOOST_TEST_REQUIRE(!r.is_ok(), ep);
    const std::string why = r.error().message();
    BOOST_TEST(why.find("refusing to listen for peers on " + ep) != std::string::npos, why);
    BOOST_TEST(why.find("insecure = true") != std::string::npos, why);
    BOOST_TEST(why.find("syncmesh keygen") != std::string::npos, why);
  }
  auto o = options("b", "tcp://0.0.0.0:0");
  o.insecure = true;
  BOOST_TEST(zmq_transport::start(o).is_ok());
  o.insecure = false;
  o.keys = fresh_keys();
  BOOST_TEST(zmq_transport::start(o).is_ok());
}

BOOST_AUTO_TEST_CASE(loopback_endpoints_are_recognised) {
  BOOST_TEST(is_loopback_endpoint("tcp://127.0.0.1:7500"));
  BOOST_TEST(is_loopback_endpoint("tcp://127.3.4.5:0"));
  BOOST_TEST(is_loopback_endpoint("tcp://localhost:1"));
  BOOST_TEST(is_loopback_endpoint("tcp://[::1]:1"));
  BOOST_TEST(is_loopback_endpoint("ipc:///tmp/x"));
  BOOST_TEST(is_loopback_endpoint("inproc://x"));
  BOOST_TEST(!is_loopback_endpoint("tcp://127.example.com:1"));
  BOOST_TEST(!is_loopback_endpoint("tcp://0.0.0.0:1"));
  BOOST_TEST(!is_loopback_endpoint("tcp://*:1"));
  BOOST_TEST(!is_loopback_endpoint("tcp://eth0:1"));
  BOOST_TEST(!is_loopback_endpoint("tcp://[::]:1"));
}

BOOST_AUTO_TEST_CASE(a_frame_over_the_senders_bound_is_refused_and_counted) {
  node b(options("b", "tcp://127.0.0.1:0"));
  auto ao = options("a");
  ao.limits.frame_bytes_max = 1024;
  node a(ao);
  link(a, b);
  BOOST_TEST(!a.t->send("b", std::string(1025, 'x')));
  BOOST_TEST(a.t->counters().frames_too_large == 1u);
  BOOST_TEST(a.t->send("b", std::string(1024, 'y')));
  BOOST_TEST_REQUIRE(b.seen.wait([](recorder& r) { return r.frames.size() == 1; }));
  BOOST_TEST(b.seen.read([](recorder& r) { return r.frames[0].second.size(); }) == 1024u);
}

BOOST_AUTO_TEST_CASE(a_frame_over_the_receivers_bound_is_dropped_by_zeromq_and_never_delivered) {
  auto bo = options("b", "tcp://127.0.0.1:0");
  bo.limits.frame_bytes_max = 1024;
  node b(bo);
  node a(options("a"));  // the default bound is far larger: a sends what b refuses
  link(a, b);
  BOOST_TEST_REQUIRE(a.t->send("b", std::string(4096, 'x')));
  // ZeroMQ reads the size from the frame header and closes the connection
  // without reading the frame; both sides report the link down.
  BOOST_TEST_REQUIRE(b.seen.wait([](recorder& r) { return !r.disconnected.empty(); }));
  BOOST_TEST_REQUIRE(a.seen.wait([](recorder& r) { return !r.disconnected.empty(); }));
  BOOST_TEST(b.seen.read([](recorder& r) { return r.disconnected[0]; }).find("frame_bytes_max (1024 bytes)") !=
             std::string::npos);
  BOOST_TEST(b.t->counters().links_down == 1u);
  // The client reconnects on its own; a frame within the bound then passes.
  BOOST_TEST_REQUIRE(a.seen.wait([](recorder& r) { return r.connected.size() == 2; }));
  BOOST_TEST_REQUIRE(b.seen.wait([](recorder& r) { return r.connected.size() == 2; }));
  BOOST_TEST_REQUIRE(a.t->send("b", "small"));
  BOOST_TEST_REQUIRE(b.seen.wait([](recorder& r) { return !r.frames.empty(); }));
  BOOST_TEST(b.seen.read([](recorder& r) { return r.frames.size(); }) == 1u);
  BOOST_TEST(b.seen.read([](recorder& r) { return r.frames[0].second; }) == "small");
  BOOST_TEST(b.t->counters().frames_received == 1u);
}

BOOST_AUTO_TEST_CASE(key_files_are_written_0600_and_load_back) {
  temp_dir dir;
  const auto keys = fresh_keys();
  const std::string path = (dir.path() / "node.key").string();
  BOOST_TEST_REQUIRE(write_curve_key_files(path, keys, false).is_ok());
  BOOST_TEST(mode_of(path) == 0600u);
  BOOST_TEST(mode_of(path + ".pub") == 0644u);

  auto loaded = load_curve_key_pair(path);
  BOOST_TEST_REQUIRE(loaded.is_ok(), loaded.error().to_string());
  BOOST_TEST(loaded->public_key == keys.public_key);
  BOOST_TEST(loaded->secret_key == keys.secret_key);
  auto pub = load_curve_public_key(path + ".pub");
  BOOST_TEST_REQUIRE(pub.is_ok(), pub.error().to_string());
  BOOST_TEST(*pub == keys.public_key);
  // The public key file holds no secret.
  BOOST_TEST(!load_curve_key_pair(path + ".pub").is_ok());

  // Loaded keys secure a link.
  auto so = options("b", "tcp://127.0.0.1:0");
  so.keys = *loaded;
  so.allowed_clients[*pub] = "a";
  node b(so);
  auto co = options("a");
  co.keys = *loaded;
  node a(co);
  link(a, b, *pub);
}

BOOST_AUTO_TEST_CASE(key_files_are_not_overwritten_without_force) {
  temp_dir dir;
  const std::string path = (dir.path() / "node.key").string();
  const auto first = fresh_keys();
  BOOST_TEST_REQUIRE(write_curve_key_files(path, first, false).is_ok());
  auto again = write_curve_key_files(path, fresh_keys(), false);
  BOOST_TEST_REQUIRE(!again.is_ok());
  BOOST_TEST(again.message().find("already exists; pass --force") != std::string::npos,
             again.message());
  BOOST_TEST(load_curve_key_pair(path)->public_key == first.public_key);

  const auto second = fresh_keys();
  BOOST_TEST_REQUIRE(write_curve_key_files(path, second, true).is_ok());
  BOOST_TEST(load_curve_key_pair(path)->public_key == second.public_key);
  BOOST_TEST(mode_of(path) == 0600u);
}

BOOST_AUTO_TEST_CASE(a_secret_key_file_others_can_read_is_refused) {
  temp_dir dir;
  const std::string path = (dir.path() / "node.key").string();
  BOOST_TEST_REQUIRE(write_curve_key_files(path, fresh_keys(), false).is_ok());
  BOOST_TEST_REQUIRE(::chmod(path.c_str(), 0644) == 0);
  auto r = load_curve_key_pair(path);
  BOOST_TEST_REQUIRE(!r.is_ok());
  BOOST_TEST(r.error().message().find("chmod 600") != std::string::npos, r.error().message());
}

BOOST_AUTO_TEST_CASE(bad_keys_are_refused_at_start) {
  auto o = options("b", "tcp://127.0.0.1:0");
  o.keys = curve_key_pair{"short", "short"};
  BOOST_TEST(!zmq_transport::start(o).is_ok());
  o.keys = fresh_keys();
  o.allowed_clients["not-a-key"] = "a";
  auto r = zmq_transport::start(o);
  BOOST_TEST_REQUIRE(!r.is_ok());
  BOOST_TEST(r.error().message().find("not-a-key") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
