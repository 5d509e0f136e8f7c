#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "messaging/control_client.hpp"
#include "messaging/control_codec.hpp"
#include "messaging/control_server.hpp"

using namespace syncmesh::messaging;
using namespace std::chrono_literals;
using nlohmann::json;
using syncmesh::store::errc;
// The suite below is named control_server, which hides the class inside it.
using server_type = syncmesh::messaging::control_server;

namespace {

constexpr std::size_t request_bytes_max = 1u << 20;
constexpr auto wait_max = 10s;  // how long a test waits for something that should happen

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string msgpack_of(const json& doc) {
  auto bytes = json::to_msgpack(doc);
  return {bytes.begin(), bytes.end()};
}

json good_request_doc() {
  return {{"v", 1}, {"id", 7}, {"verb", "status"}, {"args", json::object()}};
}

// Requests a handler has taken, for tests that answer them later or not at all.
class held_requests {
public:
  control_handler handler() {
    return [this](std::uint64_t token, control_request req) {
      std::lock_guard<std::mutex> lock(mutex_);
      items_.emplace_back(token, std::move(req));
      cv_.notify_all();
    };
  }

  // True when at least `n` requests arrived before the deadline.
  bool await_count(std::size_t n, std::chrono::milliseconds timeout = wait_max) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return items_.size() >= n; });
  }

  std::vector<std::pair<std::uint64_t, control_request>> take() {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::exchange(items_, {});
  }

private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::pair<std::uint64_t, control_request>> items_;
};

// A bare socket that speaks whatever frames a test gives it.
class raw_socket {
public:
  raw_socket(zmq::context_t& ctx, zmq::socket_type type, const std::string& endpoint)
      : socket_(ctx, type) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.connect(endpoint);
  }

  void send(const std::vector<std::string>& frames) {
    for (std::size_t i = 0; i < frames.size(); ++i)
      (void)socket_.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore
                                                                       : zmq::send_flags::none);
  }

  // The frames of the next message, or nullopt when none came in time.
  std::optional<std::vector<std::string>> recv(std::chrono::milliseconds timeout = wait_max) {
    zmq_pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, timeout) == 0)
      return std::nullopt;
    std::vector<std::string> frames;
    zmq::message_t part;
    do {
      (void)socket_.recv(part, zmq::recv_flags::none);
      frames.emplace_back(part.data<char>(), part.size());
    } while (part.more());
    return frames;
  }

  // The reply in the next message's last frame.
  control_reply recv_reply(std::chrono::milliseconds timeout = wait_max) {
    auto frames = recv(timeout);
    BOOST_REQUIRE_MESSAGE(frames.has_value(), "no reply arrived in time");
    auto rep = decode_reply(frames->back(), request_bytes_max);
    BOOST_REQUIRE_MESSAGE(rep.is_ok(), rep.error().to_string());
    return std::move(rep).value();
  }

private:
  zmq::socket_t socket_;
};

// An endpoint nothing listens on: bound by the OS, then released.
std::string unused_endpoint(zmq::context_t& ctx) {
  zmq::socket_t s(ctx, zmq::socket_type::router);
  s.set(zmq::sockopt::linger, 0);
  s.bind("tcp://127.0.0.1:*");
  return s.get(zmq::sockopt::last_endpoint);
}

std::unique_ptr<server_type> start_server(zmq::context_t& ctx, control_handler handler,
                                             control_server_bounds bounds = {},
                                             std::size_t bytes_max = request_bytes_max) {
  auto server = server_type::start(ctx, "tcp://127.0.0.1:0", bytes_max, std::move(handler),
                                      bounds);
  BOOST_REQUIRE_MESSAGE(server.is_ok(), server.error().to_string());
  return std::move(server).value();
}

// Answers every request at once with its verb and args.
control_handler echo_into(std::unique_ptr<server_type>* server) {
  return [server](std::uint64_t token, control_request req) {
    (*server)->reply(token, control_reply::success(
                                req.id, {{"verb", req.verb}, {"args", std::move(req.args)}}));
  };
}

} // namespace

BOOST_AUTO_TEST_SUITE(control_codec)

BOOST_AUTO_TEST_CASE(a_request_survives_encoding_and_decoding) {
  control_request req{42, "sync", {{"selector", {{"app", {"users", "orders"}}}}, {"force", true}}};
  auto back = decode_request(encode_request(req), request_bytes_max);
  BOOST_REQUIRE_MESSAGE(back.is_ok(), back.error().to_string());
  BOOST_TEST(back->id == 42u);
  BOOST_TEST(back->verb == "sync");
  BOOST_TEST(back->args == req.args);
}

BOOST_AUTO_TEST_CASE(a_request_with_default_args_carries_an_empty_map) {
  control_request req;
  req.id = 1;
  req.verb = "status";
  auto back = decode_request(encode_request(req), request_bytes_max);
  BOOST_REQUIRE(back.is_ok());
  BOOST_TEST(back->args == json::object());
}

BOOST_AUTO_TEST_CASE(both_forms_of_a_reply_survive_encoding_and_decoding) {
  auto ok = decode_reply(encode_reply(control_reply::success(9, {{"views", json::array({1, 2})}})),
                         request_bytes_max);
  BOOST_REQUIRE_MESSAGE(ok.is_ok(), ok.error().to_string());
  BOOST_TEST(ok->id == 9u);
  BOOST_TEST(ok->ok);
  BOOST_TEST(ok->result == (json{{"views", json::array({1, 2})}}));

  auto failed = decode_reply(encode_reply(control_reply::failure(10, "no view app.users")),
                             request_bytes_max);
  BOOST_REQUIRE_MESSAGE(failed.is_ok(), failed.error().to_string());
  BOOST_TEST(failed->id == 10u);
  BOOST_TEST(!failed->ok);
  BOOST_TEST(failed->error == "no view app.users");

  auto wire = json::from_msgpack(encode_reply(control_reply::failure(10, "x")));
  BOOST_TEST(wire == (json{{"v", 1}, {"id", 10}, {"ok", false}, {"error", "x"}}));
}

BOOST_AUTO_TEST_CASE(every_truncation_of_a_request_is_refused_as_not_messagepack) {
  const std::string frame = encode_request({3, "query", {{"sql", "select 1"}}});
  for (std::size_t n = 0; n < frame.size(); ++n) {
    auto r = decode_request(std::string_view(frame).substr(0, n), request_bytes_max);
    BOOST_REQUIRE_MESSAGE(!r.is_ok(), "a prefix of " << n << " bytes was accepted");
    BOOST_TEST((r.error().code() == errc::invalid_argument));
    BOOST_TEST(contains(r.error().message(), "control request"));
  }
  auto r = decode_request(frame.substr(0, frame.size() - 3), request_bytes_max);
  BOOST_TEST(contains(r.error().message(), "MessagePack"), r.error().message());
}

BOOST_AUTO_TEST_CASE(bytes_that_are_not_messagepack_are_refused) {
  auto r = decode_request("\xc1", request_bytes_max);  // 0xc1 is never used
  BOOST_REQUIRE(!r.is_ok());
  BOOST_TEST(contains(r.error().message(), "not one valid MessagePack value"),
             r.error().message());
}

BOOST_AUTO_TEST_CASE(trailing_bytes_after_a_request_are_refused) {
  auto r = decode_request(encode_request({1, "status", json::object()}) + "x", request_bytes_max);
  BOOST_REQUIRE(!r.is_ok());
  BOOST_TEST(contains(r.error().message(), "MessagePack"), r.error().message());
}

BOOST_AUTO_TEST_CASE(a_json_array_is_refused_because_a_request_is_a_map) {
  auto r = decode_request(msgpack_of(json::array({1, "status", json::object()})),
                          request_bytes_max);
  BOOST_REQUIRE(!r.is_ok());
  BOOST_TEST((r.error().code() == errc::invalid_argument));
  BOOST_TEST(contains(r.error().message(), "must be a MessagePack map; got array"),
             r.error().message());
}

BOOST_AUTO_TEST_CASE(a_request_of_another_protocol_version_is_refused_naming_both_versions) {
  auto doc = good_request_doc();
  doc["v"] = 2;
  auto r = decode_request(msgpack_of(doc), request_bytes_max);
  BOOST_REQUIRE(!r.is_ok());
  BOOST_TEST(contains(r.error().message(), "syncmesh-control/2"), r.error().message());
  BOOST_TEST(contains(r.error().message(), "syncmesh-control/1"), r.error().message());
}

BOOST_AUTO_TEST_CASE(an_oversized_frame_is_refused_naming_its_size_and_the_bound) {
  const std::string frame =
      encode_request({1, "write", {{"blob", std::string(2000, 'x')}}});
  auto r = decode_request(frame, 1024);
  BOOST_REQUIRE(!r.is_ok());
  BOOST_TEST((r.error().code() == errc::invalid_argument));
  BOOST_TEST(contains(r.error().message(), std::to_string(frame.size()) + " bytes"),
             r.error().message());
  BOOST_TEST(contains(r.error().message(), "1024 bytes"), r.error().message());
  BOOST_TEST(contains(r.error().message(), "control_request_bytes_max"), r.error().message());
  BOOST_TEST(decode_request(frame, frame.size()).is_ok());
}

BOOST_AUTO_TEST_CASE(missing_or_ill_typed_fields_are_refused_with_a_sentence_naming_them) {
  struct bad_case {
    std::string what;
    json doc;
    std::string mentions;
  };
  auto with = [](const char* key, json value) {
    auto d = good_request_doc();
    d[key] = std::move(value);
    return d;
  };
  auto without = [](const char* key) {
    auto d = good_request_doc();
    d.erase(key);
    return d;
  };
  const std::vector<bad_case> cases = {
      {"no version", without("v"), "\"v\""},
      {"a string version", with("v", "1"), "\"v\""},
      {"no id", without("id"), "\"id\""},
      {"a negative id", with("id", -1), "\"id\""},
      {"a string id", with("id", "7"), "\"id\""},
      {"no verb", without("verb"), "\"verb\""},
      {"a numeric verb", with("verb", 5), "\"verb\""},
      {"an empty verb", with("verb", ""), "is empty"},
      {"an upper-case verb", with("verb", "Status"), "a-z"},
      {"a verb with a space", with("verb", "sync all"), "a-z"},
      {"a verb of 33 characters", with("verb", std::string(33, 'a')), "at most 32"},
      {"no args", without("args"), "\"args\""},
      {"args that are an array", with("args", json::array()), "\"args\""},
      {"args that are null", with("args", nullptr), "\"args\""},
      {"an unknown field", with("extra", 1), "\"extra\""},
  };
  for (const auto& c : cases) {
    auto r = decode_request(msgpack_of(c.doc), request_bytes_max);
    BOOST_REQUIRE_MESSAGE(!r.is_ok(), "a request with " << c.what << " was accepted");
    BOOST_TEST((r.error().code() == errc::invalid_argument), c.what);
    BOOST_TEST(contains(r.error().message(), c.mentions),
               c.what << ": " << r.error().message());
  }
}

BOOST_AUTO_TEST_CASE(a_verb_of_exactly_32_allowed_characters_is_accepted) {
  const std::string verb = "sync_all-views" + std::string(18, 'z');
  BOOST_REQUIRE(verb.size() == control_verb_chars_max);
  auto r = decode_request(encode_request({1, verb, json::object()}), request_bytes_max);
  BOOST_REQUIRE_MESSAGE(r.is_ok(), r.error().to_string());
  BOOST_TEST(r->verb == verb);
}

BOOST_AUTO_TEST_CASE(an_id_written_as_a_signed_integer_is_accepted) {
  // Another MessagePack writer may encode id 7 as int8 (0xd0 0x07).
  std::string frame = msgpack_of(good_request_doc());
  const std::string unsigned_id = std::string("\xa2id", 3) + '\x07';
  auto at = frame.find(unsigned_id);
  BOOST_REQUIRE(at != std::string::npos);
  frame.replace(at, unsigned_id.size(), std::string("\xa2id\xd0\x07", 5));
  auto r = decode_request(frame, request_bytes_max);
  BOOST_REQUIRE_MESSAGE(r.is_ok(), r.error().to_string());
  BOOST_TEST(r->id == 7u);
}

BOOST_AUTO_TEST_CASE(nesting_past_the_depth_bound_is_refused_without_exhausting_the_stack) {
  json deep = json::array();
  for (int i = 0; i < 200; ++i)
    deep = json::array({std::move(deep)});
  auto r = decode_request(encode_request({1, "write", {{"rows", deep}}}), request_bytes_max);
  BOOST_REQUIRE(!r.is_ok());
  BOOST_TEST(contains(r.error().message(), "deeper than 64 levels"), r.error().message());

  // A megabyte of one-element arrays nested in each other.
  const std::string hostile = std::string(request_bytes_max - 1, '\x91') + '\xc0';
  auto h = decode_request(hostile, request_bytes_max);
  BOOST_REQUIRE(!h.is_ok());
  BOOST_TEST(contains(h.error().message(), "deeper than 64 levels"), h.error().message());
}

BOOST_AUTO_TEST_CASE(the_id_of_a_refused_request_can_still_be_read_for_the_refusal) {
  auto doc = good_request_doc();
  doc["verb"] = "NOT A VERB";
  BOOST_TEST(peek_request_id(msgpack_of(doc), request_bytes_max) == 7u);
  BOOST_TEST(peek_request_id("\xc1", request_bytes_max) == 0u);
  BOOST_TEST(peek_request_id(msgpack_of(doc), 4) == 0u);
}

BOOST_AUTO_TEST_CASE(malformed_replies_are_refused_with_a_sentence) {
  const json good = {{"v", 1}, {"id", 1}, {"ok", true}, {"result", nullptr}};
  BOOST_TEST(decode_reply(msgpack_of(good), request_bytes_max).is_ok());

  auto no_result = good;
  no_result.erase("result");
  auto r1 = decode_reply(msgpack_of(no_result), request_bytes_max);
  BOOST_REQUIRE(!r1.is_ok());
  BOOST_TEST(contains(r1.error().message(), "\"result\""), r1.error().message());

  const json failed_without_error = {{"v", 1}, {"id", 1}, {"ok", false}};
  auto r2 = decode_reply(msgpack_of(failed_without_error), request_bytes_max);
  BOOST_REQUIRE(!r2.is_ok());
  BOOST_TEST(contains(r2.error().message(), "\"error\""), r2.error().message());

  auto newer = good;
  newer["v"] = 3;
  auto r3 = decode_reply(msgpack_of(newer), request_bytes_max);
  BOOST_REQUIRE(!r3.is_ok());
  BOOST_TEST(contains(r3.error().message(), "syncmesh-control/3"), r3.error().message());

  auto r4 = decode_reply(encode_reply(control_reply::success(1, std::string(100, 'x'))), 50);
  BOOST_REQUIRE(!r4.is_ok());
  BOOST_TEST(contains(r4.error().message(), "control_reply_bytes_max"), r4.error().message());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(control_server)

BOOST_AUTO_TEST_CASE(a_server_with_an_echo_handler_answers_a_client) {
  zmq::context_t ctx;
  std::unique_ptr<server_type> server;
  server = start_server(ctx, echo_into(&server));
  BOOST_TEST(!contains(server->last_endpoint(), "*"));
  BOOST_TEST(!contains(server->last_endpoint(), ":0"));
  BOOST_TEST(contains(server->last_endpoint(), "tcp://127.0.0.1:"));

  control_client client(ctx, server->last_endpoint(), 5000ms);
  for (int i = 0; i < 3; ++i) {
    auto rep = client.call("status", {{"n", i}});
    BOOST_REQUIRE_MESSAGE(rep.is_ok(), rep.error().to_string());
    BOOST_TEST(rep->ok);
    BOOST_TEST(rep->result == (json{{"verb", "status"}, {"args", {{"n", i}}}}));
  }
}

BOOST_AUTO_TEST_CASE(a_wildcard_port_binds_like_port_zero) {
  zmq::context_t ctx;
  std::unique_ptr<server_type> server;
  auto started = server_type::start(ctx, "tcp://127.0.0.1:*", request_bytes_max,
                                       echo_into(&server));
  BOOST_REQUIRE_MESSAGE(started.is_ok(), started.error().to_string());
  server = std::move(started).value();
  control_client client(ctx, server->last_endpoint(), 5000ms);
  auto rep = client.call("ping");
  BOOST_REQUIRE_MESSAGE(rep.is_ok(), rep.error().to_string());
  BOOST_TEST(rep->ok);
}

BOOST_AUTO_TEST_CASE(req_clients_and_dealer_clients_with_or_without_a_delimiter_are_answered) {
  zmq::context_t ctx;
  std::unique_ptr<server_type> server;
  server = start_server(ctx, echo_into(&server));

  raw_socket req(ctx, zmq::socket_type::req, server->last_endpoint());
  req.send({encode_request({11, "ping", json::object()})});
  auto via_req = req.recv();
  BOOST_REQUIRE(via_req.has_value());
  BOOST_REQUIRE(via_req->size() == 1u);
  BOOST_TEST(decode_reply(via_req->front(), request_bytes_max)->id == 11u);

  raw_socket bare(ctx, zmq::socket_type::dealer, server->last_endpoint());
  bare.send({encode_request({12, "ping", json::object()})});
  auto via_bare = bare.recv();
  BOOST_REQUIRE(via_bare.has_value());
  BOOST_REQUIRE(via_bare->size() == 1u);
  BOOST_TEST(decode_reply(via_bare->front(), request_bytes_max)->id == 12u);

  raw_socket delimited(ctx, zmq::socket_type::dealer, server->last_endpoint());
  delimited.send({"", encode_request({13, "ping", json::object()})});
  auto via_delimited = delimited.recv();
  BOOST_REQUIRE(via_delimited.has_value());
  BOOST_REQUIRE(via_delimited->size() == 2u);
  BOOST_TEST(via_delimited->front().empty());
  BOOST_TEST(decode_reply(via_delimited->back(), request_bytes_max)->id == 13u);
}

BOOST_AUTO_TEST_CASE(replies_given_later_from_another_thread_answer_100_requests_in_flight) {
  constexpr int clients = 4;
  constexpr int per_client = 25;
  constexpr std::size_t total = clients * per_client;
  zmq::context_t ctx;
  held_requests held;
  auto server = start_server(ctx, held.handler());

  std::vector<std::unique_ptr<raw_socket>> dealers;
  for (int c = 0; c < clients; ++c) {
    dealers.push_back(std::make_unique<raw_socket>(ctx, zmq::socket_type::dealer,
                                                   server->last_endpoint()));
    for (int n = 1; n <= per_client; ++n) {
      auto frame = encode_request({std::uint64_t(n), "compute", {{"client", c}, {"n", n}}});
      // Half the clients send the empty delimiter a REQ socket would.
      if (c % 2 == 0)
        dealers.back()->send({"", frame});
      else
        dealers.back()->send({frame});
    }
  }

  std::atomic<bool> all_in_flight{false};
  std::thread replier([&] {
    if (!held.await_count(total))
      return;
    all_in_flight = true;
    auto items = held.take();
    std::reverse(items.begin(), items.end());
    for (auto& [token, req] : items)
      server->reply(token, control_reply::success(
                               0, {{"client", req.args["client"]},
                                   {"square", req.args["n"].get<int>() * req.args["n"].get<int>()}}));
  });

  for (int c = 0; c < clients; ++c) {
    std::vector<bool> answered(per_client + 1, false);
    for (int k = 0; k < per_client; ++k) {
      auto rep = dealers[c]->recv_reply();
      BOOST_REQUIRE(rep.ok);
      BOOST_REQUIRE(rep.id >= 1u && rep.id <= std::uint64_t(per_client));
      BOOST_TEST(!answered[rep.id], "request " << rep.id << " was answered twice");
      answered[rep.id] = true;
      BOOST_TEST(rep.result["client"] == c);
      BOOST_TEST(rep.result["square"] == rep.id * rep.id);
    }
  }
  replier.join();
  BOOST_TEST(all_in_flight.load());
}

BOOST_AUTO_TEST_CASE(several_control_clients_on_threads_each_get_their_own_answers) {
  constexpr int threads = 6;
  constexpr int calls = 10;
  zmq::context_t ctx;
  held_requests held;
  auto server = start_server(ctx, held.handler());

  std::atomic<bool> done{false};
  std::thread replier([&] {
    while (!done) {
      if (!held.await_count(1, 50ms))
        continue;
      for (auto& [token, req] : held.take())
        server->reply(token, control_reply::success(0, req.args));
    }
  });

  std::atomic<int> right{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < threads; ++t)
    callers.emplace_back([&, t] {
      control_client client(ctx, server->last_endpoint(), 5000ms);
      for (int i = 0; i < calls; ++i) {
        json args = {{"thread", t}, {"call", i}};
        auto rep = client.call("echo", args);
        if (rep.is_ok() && rep->ok && rep->result == args)
          ++right;
      }
    });
  for (auto& c : callers)
    c.join();
  done = true;
  replier.join();
  BOOST_TEST(right.load() == threads * calls);
}

BOOST_AUTO_TEST_CASE(a_malformed_frame_gets_an_error_reply_and_the_next_good_request_is_served) {
  zmq::context_t ctx;
  std::unique_ptr<server_type> server;
  server = start_server(ctx, echo_into(&server));
  raw_socket dealer(ctx, zmq::socket_type::dealer, server->last_endpoint());

  dealer.send({"", "\xc1 not messagepack"});
  auto garbage = dealer.recv_reply();
  BOOST_TEST(!garbage.ok);
  BOOST_TEST(garbage.id == 0u);
  BOOST_TEST(contains(garbage.error, "MessagePack"), garbage.error);

  dealer.send({"", msgpack_of(json::array({1, 2}))});
  auto array = dealer.recv_reply();
  BOOST_TEST(!array.ok);
  BOOST_TEST(contains(array.error, "map"), array.error);

  auto bad_verb = good_request_doc();
  bad_verb["verb"] = "DROP TABLE";
  dealer.send({"", msgpack_of(bad_verb)});
  auto refused = dealer.recv_reply();
  BOOST_TEST(!refused.ok);
  BOOST_TEST(refused.id == 7u);  // the refusal names the request it answers
  BOOST_TEST(contains(refused.error, "a-z"), refused.error);

  dealer.send({"", ""});
  BOOST_TEST(!dealer.recv_reply().ok);

  dealer.send({"", encode_request({8, "status", {{"after", "garbage"}}})});
  auto served = dealer.recv_reply();
  BOOST_TEST(served.ok);
  BOOST_TEST(served.id == 8u);
  BOOST_TEST(served.result["args"]["after"] == "garbage");
}

BOOST_AUTO_TEST_CASE(a_message_with_too_many_frames_is_refused_and_the_server_keeps_serving) {
  zmq::context_t ctx;
  std::unique_ptr<server_type> server;
  server = start_server(ctx, echo_into(&server));
  raw_socket dealer(ctx, zmq::socket_type::dealer, server->last_endpoint());

  dealer.send(std::vector<std::string>(40, "frame"));
  auto refused = dealer.recv_reply();
  BOOST_TEST(!refused.ok);
  BOOST_TEST(contains(refused.error, "frames"), refused.error);

  dealer.send({"", encode_request({2, "status", json::object()})});
  auto served = dealer.recv_reply();
  BOOST_TEST(served.ok);
  BOOST_TEST(served.id == 2u);
}

BOOST_AUTO_TEST_CASE(an_oversized_request_is_refused_with_a_sentence_naming_the_bound) {
  zmq::context_t ctx;
  std::unique_ptr<server_type> server;
  server = start_server(ctx, echo_into(&server), {}, 1024);
  control_client client(ctx, server->last_endpoint(), 5000ms);

  auto rep = client.call("write", {{"blob", std::string(2000, 'x')}});
  BOOST_REQUIRE_MESSAGE(rep.is_ok(), rep.error().to_string());
  BOOST_TEST(!rep->ok);
  BOOST_TEST(contains(rep->error, "control_request_bytes_max"), rep->error);
  BOOST_TEST(contains(rep->error, "1024 bytes"), rep->error);

  auto small = client.call("write", {{"blob", "x"}});
  BOOST_REQUIRE(small.is_ok());
  BOOST_TEST(small->ok);
}

BOOST_AUTO_TEST_CASE(a_client_with_no_server_times_out_with_a_sentence_within_its_bound) {
  zmq::context_t ctx;
  const std::string endpoint = unused_endpoint(ctx);
  control_client client(ctx, endpoint, 200ms);

  const auto began = std::chrono::steady_clock::now();
  auto rep = client.call("status");
  const auto took = std::chrono::steady_clock::now() - began;

  BOOST_REQUIRE(!rep.is_ok());
  BOOST_TEST((rep.error().code() == errc::io_error));
  BOOST_TEST(rep.error().message() ==
                 "no reply from the node at " + endpoint +
                     " within 200 ms; is `syncmesh node` running there?",
             rep.error().message());
  BOOST_TEST((took >= 200ms));
  BOOST_TEST((took < 2000ms), "the call took "
                                << std::chrono::duration_cast<std::chrono::milliseconds>(took)
                                       .count()
                                << " ms");
}

BOOST_AUTO_TEST_CASE(a_late_reply_is_not_taken_for_the_next_call) {
  zmq::context_t ctx;
  held_requests held;
  auto server = start_server(ctx, held.handler());
  control_client client(ctx, server->last_endpoint(), 200ms);

  auto first = client.call("slow");
  BOOST_REQUIRE(!first.is_ok());
  BOOST_TEST(contains(first.error().message(), "within 200 ms"));
  BOOST_REQUIRE(held.await_count(1));
  const auto late_token = held.take().front().first;
  server->reply(late_token, control_reply::success(0, "late"));

  std::thread replier([&] {
    if (!held.await_count(1))
      return;
    auto [token, req] = held.take().front();
    server->reply(token, control_reply::success(0, "fresh"));
  });
  auto second = client.call("fast");
  replier.join();
  BOOST_REQUIRE_MESSAGE(second.is_ok(), second.error().to_string());
  BOOST_TEST(second->result == "fresh");
}

BOOST_AUTO_TEST_CASE(binding_an_endpoint_already_in_use_gives_an_io_error_naming_it) {
  zmq::context_t ctx;
  std::unique_ptr<server_type> first;
  first = start_server(ctx, echo_into(&first));

  auto second = server_type::start(ctx, first->last_endpoint(), request_bytes_max,
                                      [](std::uint64_t, control_request) {});
  BOOST_REQUIRE(!second.is_ok());
  BOOST_TEST((second.error().code() == errc::io_error));
  BOOST_TEST(contains(second.error().message(), first->last_endpoint()),
             second.error().message());
  BOOST_TEST(contains(second.error().message(), "control_endpoint"), second.error().message());

  // The first server is unharmed.
  control_client client(ctx, first->last_endpoint(), 5000ms);
  BOOST_TEST(client.call("ping").is_ok());
}

BOOST_AUTO_TEST_CASE(a_malformed_endpoint_gives_an_io_error_naming_it) {
  zmq::context_t ctx;
  auto server = server_type::start(ctx, "tcpx://127.0.0.1:1", request_bytes_max,
                                      [](std::uint64_t, control_request) {});
  BOOST_REQUIRE(!server.is_ok());
  BOOST_TEST((server.error().code() == errc::io_error));
  BOOST_TEST(contains(server.error().message(), "tcpx://127.0.0.1:1"), server.error().message());
  BOOST_TEST(contains(server.error().message(), "tcp://HOST:PORT"), server.error().message());
}

BOOST_AUTO_TEST_CASE(requests_past_the_in_flight_bound_are_refused_until_some_are_answered) {
  zmq::context_t ctx;
  held_requests held;
  control_server_bounds bounds;
  bounds.in_flight_max = 2;
  auto server = start_server(ctx, held.handler(), bounds);
  raw_socket dealer(ctx, zmq::socket_type::dealer, server->last_endpoint());

  for (std::uint64_t id = 1; id <= 3; ++id)
    dealer.send({"", encode_request({id, "hold", json::object()})});
  auto refused = dealer.recv_reply();
  BOOST_TEST(refused.id == 3u);
  BOOST_TEST(!refused.ok);
  BOOST_TEST(contains(refused.error, "control_in_flight_max"), refused.error);
  BOOST_REQUIRE(held.await_count(2));

  auto items = held.take();
  server->reply(items[0].first, control_reply::success(0, "one"));
  auto answered = dealer.recv_reply();
  BOOST_TEST(answered.id == 1u);
  BOOST_TEST(answered.result == "one");

  dealer.send({"", encode_request({4, "hold", json::object()})});
  BOOST_TEST(held.await_count(1));
  auto fourth = held.take();
  BOOST_REQUIRE(fourth.size() == 1u);
  BOOST_TEST(fourth[0].second.id == 4u);
}

BOOST_AUTO_TEST_CASE(an_unanswered_request_expires_with_a_sentence_and_its_late_reply_is_ignored) {
  zmq::context_t ctx;
  held_requests held;
  control_server_bounds bounds;
  bounds.reply_ttl = 100ms;
  auto server = start_server(ctx, held.handler(), bounds);
  raw_socket dealer(ctx, zmq::socket_type::dealer, server->last_endpoint());

  dealer.send({"", encode_request({5, "hang", json::object()})});
  auto expired = dealer.recv_reply();
  BOOST_TEST(expired.id == 5u);
  BOOST_TEST(!expired.ok);
  BOOST_TEST(contains(expired.error, "control_reply_ttl_ms"), expired.error);

  BOOST_REQUIRE(held.await_count(1));
  server->reply(held.take().front().first, control_reply::success(0, "too late"));
  server->reply(987654321, control_reply::success(0, "never asked"));

  dealer.send({"", encode_request({6, "hang", json::object()})});
  BOOST_REQUIRE(held.await_count(1));
  server->reply(held.take().front().first, control_reply::success(0, "in time"));
  auto next = dealer.recv_reply();
  BOOST_TEST(next.id == 6u);
  BOOST_TEST(next.result == "in time");
}

BOOST_AUTO_TEST_CASE(a_handler_that_throws_is_answered_for_and_the_server_keeps_serving) {
  zmq::context_t ctx;
  std::unique_ptr<server_type> server;
  server = start_server(ctx, [&](std::uint64_t token, control_request req) {
    if (req.verb == "explode")
      throw std::runtime_error("the control actor is gone");
    server->reply(token, control_reply::success(0, "fine"));
  });
  control_client client(ctx, server->last_endpoint(), 5000ms);

  auto broken = client.call("explode");
  BOOST_REQUIRE(broken.is_ok());
  BOOST_TEST(!broken->ok);
  BOOST_TEST(contains(broken->error, "the control actor is gone"), broken->error);

  auto fine = client.call("status");
  BOOST_REQUIRE(fine.is_ok());
  BOOST_TEST(fine->result == "fine");
}

BOOST_AUTO_TEST_CASE(stopping_twice_is_harmless_and_replies_after_stop_are_ignored) {
  zmq::context_t ctx;
  held_requests held;
  auto server = start_server(ctx, held.handler());
  control_client client(ctx, server->last_endpoint(), 200ms);
  BOOST_TEST(!client.call("status").is_ok());
  BOOST_REQUIRE(held.await_count(1));
  server->stop();
  server->reply(held.take().front().first, control_reply::success(0, "after stop"));
  server->stop();
}

BOOST_AUTO_TEST_SUITE_END()
