#include <boost/test/unit_test.hpp>

#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "messaging/event_bus.hpp"

using namespace syncmesh::messaging;
using namespace std::chrono_literals;
using nlohmann::json;
using syncmesh::store::errc;

namespace {

constexpr auto wait_max = 10s;  // how long a test waits for something that should happen

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::unique_ptr<event_publisher> bind_publisher(zmq::context_t& ctx,
                                                std::size_t bytes_max = event_bytes_max_default) {
  auto pub = event_publisher::bind(ctx, "tcp://127.0.0.1:0", bytes_max);
  BOOST_REQUIRE_MESSAGE(pub.is_ok(), pub.error().to_string());
  return std::move(pub).value();
}

std::unique_ptr<event_subscriber> subscribe(zmq::context_t& ctx, const std::string& endpoint,
                                            const std::string& prefix) {
  auto sub = event_subscriber::connect(ctx, endpoint, prefix);
  BOOST_REQUIRE_MESSAGE(sub.is_ok(), sub.error().to_string());
  return std::move(sub).value();
}

// PUB/SUB drops what is published before a subscription reaches the
// publisher. Publishes `probe` until the subscriber sees one; true when it
// did before the deadline.
bool await_subscription(event_publisher& pub, event_subscriber& sub, const json& probe) {
  const auto deadline = std::chrono::steady_clock::now() + wait_max;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!pub.publish(probe).is_ok())
      return false;
    auto got = sub.next(20ms);
    if (got.is_ok() && got->has_value() && **got == probe)
      return true;
  }
  return false;
}

// The next event that is not a probe, or null when none came in time.
json next_real_event(event_subscriber& sub, const std::string& probe_type) {
  const auto deadline = std::chrono::steady_clock::now() + wait_max;
  while (std::chrono::steady_clock::now() < deadline) {
    auto got = sub.next(100ms);
    BOOST_REQUIRE_MESSAGE(got.is_ok(), got.error().to_string());
    if (got->has_value() && (**got)["type"] != probe_type)
      return **got;
  }
  return nullptr;
}

} // namespace

BOOST_AUTO_TEST_SUITE(event_bus)

BOOST_AUTO_TEST_CASE(events_published_after_the_subscriber_connected_are_received_in_order) {
  zmq::context_t ctx;
  auto pub = bind_publisher(ctx);
  BOOST_TEST(contains(pub->last_endpoint(), "tcp://127.0.0.1:"));
  BOOST_TEST(!contains(pub->last_endpoint(), "*"));
  auto sub = subscribe(ctx, pub->last_endpoint(), "sync:");
  BOOST_REQUIRE(await_subscription(*pub, *sub, {{"type", "sync:probe"}}));

  const json start = {{"type", "sync:start"}, {"view", "app.users"}, {"run", 1}};
  const json not_wanted = {{"type", "error"}, {"message", "connector down"}};
  const json end = {{"type", "sync:end"}, {"view", "app.users"}, {"rows", 42}};
  BOOST_REQUIRE(pub->publish(start).is_ok());
  BOOST_REQUIRE(pub->publish(not_wanted).is_ok());
  BOOST_REQUIRE(pub->publish(end).is_ok());

  BOOST_TEST(next_real_event(*sub, "sync:probe") == start);
  BOOST_TEST(next_real_event(*sub, "sync:probe") == end);
}

BOOST_AUTO_TEST_CASE(a_subscriber_to_everything_sees_every_type) {
  zmq::context_t ctx;
  auto pub = bind_publisher(ctx);
  auto sub = subscribe(ctx, pub->last_endpoint(), "");
  BOOST_REQUIRE(await_subscription(*pub, *sub, {{"type", "probe"}}));

  const json error = {{"type", "error"}, {"message", "connector down"}};
  const json conflict = {{"type", "conflict"}, {"row", {{"id", 1}}}};
  BOOST_REQUIRE(pub->publish(error).is_ok());
  BOOST_REQUIRE(pub->publish(conflict).is_ok());
  BOOST_TEST(next_real_event(*sub, "probe") == error);
  BOOST_TEST(next_real_event(*sub, "probe") == conflict);
}

BOOST_AUTO_TEST_CASE(a_subscriber_with_nothing_to_read_times_out_with_no_event) {
  zmq::context_t ctx;
  auto pub = bind_publisher(ctx);
  auto sub = subscribe(ctx, pub->last_endpoint(), "");
  auto got = sub->next(50ms);
  BOOST_REQUIRE(got.is_ok());
  BOOST_TEST(!got->has_value());
}

BOOST_AUTO_TEST_CASE(an_event_without_a_string_type_is_refused) {
  zmq::context_t ctx;
  auto pub = bind_publisher(ctx);
  for (const json& bad : {json{{"kind", "sync:start"}}, json{{"type", 7}},
                          json{{"type", ""}}, json::array({"sync:start"})}) {
    auto st = pub->publish(bad);
    BOOST_REQUIRE_MESSAGE(!st.is_ok(), bad.dump() << " was published");
    BOOST_TEST((st.code() == errc::invalid_argument));
  }
  BOOST_TEST(contains(pub->publish(json{{"kind", 1}}).message(), "\"type\""));
}

BOOST_AUTO_TEST_CASE(an_event_past_the_size_bound_is_refused_naming_the_bound) {
  zmq::context_t ctx;
  auto pub = bind_publisher(ctx, 256);
  auto st = pub->publish({{"type", "sync:end"}, {"detail", std::string(300, 'x')}});
  BOOST_REQUIRE(!st.is_ok());
  BOOST_TEST((st.code() == errc::invalid_argument));
  BOOST_TEST(contains(st.message(), "event_bytes_max"), st.message());
  BOOST_TEST(contains(st.message(), "256 bytes"), st.message());
  BOOST_TEST(pub->publish({{"type", "sync:end"}}).is_ok());
}

BOOST_AUTO_TEST_CASE(a_frame_that_is_not_an_event_is_refused_and_the_next_event_is_read) {
  zmq::context_t ctx;
  zmq::socket_t raw(ctx, zmq::socket_type::pub);
  raw.set(zmq::sockopt::linger, 0);
  raw.bind("tcp://127.0.0.1:*");
  const std::string endpoint = raw.get(zmq::sockopt::last_endpoint);
  auto sub = subscribe(ctx, endpoint, "");

  auto send = [&](const std::string& topic, const std::string& payload) {
    (void)raw.send(zmq::buffer(topic), zmq::send_flags::sndmore);
    (void)raw.send(zmq::buffer(payload), zmq::send_flags::none);
  };
  auto as_msgpack = [](const json& doc) {
    auto bytes = json::to_msgpack(doc);
    return std::string(bytes.begin(), bytes.end());
  };

  // Await the subscription with well-formed probes from the raw socket.
  const auto deadline = std::chrono::steady_clock::now() + wait_max;
  bool subscribed = false;
  while (!subscribed && std::chrono::steady_clock::now() < deadline) {
    send("probe", as_msgpack({{"type", "probe"}}));
    auto got = sub->next(20ms);
    subscribed = got.is_ok() && got->has_value();
  }
  BOOST_REQUIRE(subscribed);
  // Probes may still be in flight; skip them to reach the frame under test.
  auto next_not_probe = [&] {
    for (;;) {
      auto got = sub->next(wait_max);
      if (!got.is_ok() || !got->has_value() || (**got)["type"] != "probe")
        return got;
    }
  };

  send("sync:end", "\xc1");
  auto garbage = next_not_probe();
  BOOST_REQUIRE(!garbage.is_ok());
  BOOST_TEST((garbage.error().code() == errc::invalid_argument));
  BOOST_TEST(contains(garbage.error().message(), "MessagePack"), garbage.error().message());

  send("sync:end", as_msgpack({{"type", "sync:start"}}));
  auto mismatch = sub->next(wait_max);
  BOOST_REQUIRE(!mismatch.is_ok());
  BOOST_TEST(contains(mismatch.error().message(), "topic"), mismatch.error().message());

  const json good = {{"type", "sync:end"}, {"rows", 3}};
  send("sync:end", as_msgpack(good));
  auto next = sub->next(wait_max);
  BOOST_REQUIRE_MESSAGE(next.is_ok(), next.error().to_string());
  BOOST_REQUIRE(next->has_value());
  BOOST_TEST(**next == good);
}

BOOST_AUTO_TEST_CASE(binding_an_event_endpoint_already_in_use_gives_an_io_error_naming_it) {
  zmq::context_t ctx;
  auto first = bind_publisher(ctx);
  auto second = event_publisher::bind(ctx, first->last_endpoint());
  BOOST_REQUIRE(!second.is_ok());
  BOOST_TEST((second.error().code() == errc::io_error));
  BOOST_TEST(contains(second.error().message(), first->last_endpoint()),
             second.error().message());
  BOOST_TEST(contains(second.error().message(), "events_endpoint"), second.error().message());
}

BOOST_AUTO_TEST_SUITE_END()
