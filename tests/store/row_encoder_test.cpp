// Rows encoded once on a producer's thread are the rows the store would have
// encoded itself, and stage the same copy.

#include <boost/test/unit_test.hpp>

#include <limits>
#include <random>

#include "fixture.hpp"
#include "seed.hpp"
#include "store/key_codec.hpp"
#include "store/record_codec.hpp"
#include "store/row_encoder.hpp"

using namespace syncmesh::store;
using namespace syncmesh::store::test;

namespace {

// Every kind of column, with a composite key of text and integer.
schema every_kind() {
  schema s;
  s.table = "app.mixed";
  s.columns = {{"flag", value_kind::boolean, "", true},   {"tenant", value_kind::text, "", false},
               {"score", value_kind::real, "", true},     {"seq", value_kind::integer, "", false},
               {"blob", value_kind::bytes, "", true},     {"price", value_kind::exact, "numeric", true}};
  s.primary_key = {1, 3};
  return s;
}

value random_value(std::mt19937_64& rng, const column& c) {
  std::uniform_int_distribution<int> pick(0, 9);
  if (c.nullable && pick(rng) == 0)
    return value::null();
  auto text = [&] {
    std::string s;
    for (int n = pick(rng) * 3; n > 0; --n)
      s.push_back(static_cast<char>(rng() & 0xff));  // NULs and high bytes too
    return s;
  };
  switch (c.kind) {
    case value_kind::boolean: return value::boolean(rng() & 1);
    case value_kind::integer: {
      static const std::int64_t edges[] = {0, -1, 127, 128, -33, 65536,
                                           std::numeric_limits<std::int64_t>::min(),
                                           std::numeric_limits<std::int64_t>::max()};
      return pick(rng) < 3 ? value::integer(edges[rng() % 8])
                           : value::integer(static_cast<std::int64_t>(rng()));
    }
    case value_kind::real: return value::real(pick(rng) < 2 ? 2.0 : static_cast<double>(rng()) / 7);
    case value_kind::text: return value::text(text());
    case value_kind::bytes: return value::bytes(text());
    default: return value::exact(c.type_name, text());
  }
}

status add_typed(row_encoder& enc, const value& v) {
  switch (v.kind()) {
    case value_kind::null: return enc.add_null();
    case value_kind::boolean: return enc.add_bool(v.as_bool());
    case value_kind::integer: return enc.add_int(v.as_int());
    case value_kind::real: return enc.add_real(v.as_real());
    case value_kind::text: return enc.add_text(v.as_text());
    case value_kind::bytes: return enc.add_bytes(v.as_bytes());
    case value_kind::exact: return enc.add_exact(v.as_exact().text);
  }
  return status::ok();
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(store_row_encoder, mem_store_fixture)

BOOST_AUTO_TEST_CASE(encoded_rows_are_the_bytes_the_store_writes_for_the_same_rows) {
  auto seed = syncmesh::test::test_seed();
  std::mt19937_64 rng(seed);
  const auto shape = every_kind();
  row_encoder enc(shape);
  std::vector<row> rows;
  for (int i = 0; i < 500; ++i) {
    row r;
    for (const auto& c : shape.columns)
      r.push_back(random_value(rng, c));
    for (const auto& v : r) {
      // Half through the typed adds, half through add(value).
      auto st = (i % 2) ? add_typed(enc, v) : enc.add(v);
      BOOST_REQUIRE_MESSAGE(st.is_ok(), st.to_string());
    }
    BOOST_REQUIRE(enc.end_row().is_ok());
    rows.push_back(std::move(r));
  }
  auto encoded = enc.take();
  BOOST_TEST(encoded->size() == rows.size());
  BOOST_TEST(enc.rows() == 0u);
  std::size_t i = 0;
  encoded->for_each([&](std::string_view key, std::string_view val) {
    BOOST_REQUIRE(i < rows.size());
    BOOST_TEST((key == encode_key(shape.key_of(rows[i]))), "row " << i);
    BOOST_TEST((val == encode_row(rows[i])), "row " << i);
    ++i;
  });
  BOOST_TEST(i == rows.size());
}

BOOST_AUTO_TEST_CASE(a_value_that_does_not_fit_its_column_is_refused_and_the_row_dropped) {
  row_encoder enc(users_schema());
  BOOST_REQUIRE(enc.add_int(1).is_ok());
  BOOST_REQUIRE(enc.add_text("ada").is_ok());
  BOOST_REQUIRE(enc.add_exact("1.50").is_ok());
  BOOST_REQUIRE(enc.end_row().is_ok());

  auto wrong_kind = enc.add_text("two");
  BOOST_TEST((wrong_kind.code() == errc::invalid_argument));
  BOOST_TEST(wrong_kind.message().find("'app.users.id' holds integer values") != std::string::npos,
             wrong_kind.message());
  auto null_key = enc.add_null();
  BOOST_TEST(null_key.message().find("not nullable") != std::string::npos, null_key.message());
  BOOST_REQUIRE(enc.add_int(2).is_ok());
  BOOST_REQUIRE(enc.add_text("bob").is_ok());
  auto other_exact = enc.add(value::exact("money", "1"));
  BOOST_TEST(other_exact.message().find("holds numeric values but got money")
               != std::string::npos,
             other_exact.message());
  BOOST_REQUIRE(enc.add_int(3).is_ok());
  auto short_row = enc.end_row();
  BOOST_TEST(short_row.message().find("has 3 columns but the row has 1 values")
               != std::string::npos,
             short_row.message());

  // Only the whole row made it.
  auto rows = enc.take();
  BOOST_TEST(rows->size() == 1u);
  rows->for_each([&](std::string_view, std::string_view val) {
    BOOST_TEST((val == encode_row(user(1, "ada", "1.50"))));
  });
}

BOOST_AUTO_TEST_CASE(encoded_rows_stage_and_swap_in_like_rows) {
  create_tables();
  auto generation = db->begin_staging(users_schema());
  BOOST_REQUIRE(generation.is_ok());
  row_encoder enc(users_schema());
  for (std::int64_t id = 0; id < 100; ++id) {
    BOOST_REQUIRE(enc.add_int(id).is_ok());
    BOOST_REQUIRE((id % 10 ? enc.add_text("user" + std::to_string(id)) : enc.add_null()).is_ok());
    BOOST_REQUIRE(enc.add_exact(std::to_string(id) + ".25").is_ok());
    BOOST_REQUIRE(enc.end_row().is_ok());
    if (id % 30 == 29) {  // several batches, as a snapshot's pieces
      batch b;
      b.stage.push_back({"app.users", *generation, nullptr, enc.take()});
      BOOST_REQUIRE(db->apply(b).is_ok());
    }
  }
  batch last;
  last.stage.push_back({"app.users", *generation, nullptr, enc.take()});
  last.swaps.push_back({"app.users", *generation});
  auto done = db->apply(last);
  BOOST_REQUIRE_MESSAGE(done.is_ok(), done.error().to_string());

  auto rows = db->scan("app.users");
  BOOST_REQUIRE(rows.is_ok());
  BOOST_REQUIRE(rows->size() == 100u);
  BOOST_TEST(((*rows)[42] == user(42, "user42", "42.25")));
  BOOST_TEST((*rows)[40][1].is_null());
  BOOST_TEST(((*db->get("app.users", {value::integer(99)}))->at(2) == value::exact("numeric", "99.25")));
  reopen();
  BOOST_TEST(db->scan("app.users")->size() == 100u);
}

BOOST_AUTO_TEST_CASE(rows_encoded_for_another_shape_are_refused_whole) {
  create_tables();
  auto generation = db->begin_staging(users_schema());
  auto other = users_schema();
  other.columns[2] = {"balance", value_kind::exact, "money", true};
  row_encoder enc(other);
  BOOST_REQUIRE(enc.add_int(1).is_ok());
  BOOST_REQUIRE(enc.add_text("ada").is_ok());
  BOOST_REQUIRE(enc.add_exact("$1.00").is_ok());
  BOOST_REQUIRE(enc.end_row().is_ok());
  batch b;
  b.stage.push_back({"app.users", *generation, nullptr, enc.take()});
  auto r = db->apply(b);
  BOOST_REQUIRE(!r.is_ok());
  BOOST_TEST((r.error().code() == errc::invalid_argument));
  BOOST_TEST(r.error().message().find("another shape") != std::string::npos, r.error().message());
  BOOST_REQUIRE(db->apply([&] {
                  batch s;
                  s.swaps.push_back({"app.users", *generation});
                  return s;
                }()).is_ok());
  BOOST_TEST(db->scan("app.users")->empty());
}

BOOST_AUTO_TEST_SUITE_END()
