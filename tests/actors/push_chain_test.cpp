#include <boost/test/unit_test.hpp>

#include "actors/messages.hpp"

using namespace syncmesh::actors;
using syncmesh::store::outbox_state;

namespace {

change_set push_of(const std::string& view, bool after_previous) {
  change_set cs;
  cs.view = view;
  cs.after_previous = after_previous;
  return cs;
}

push_report report_of(std::initializer_list<outbox_state> states) {
  push_report r;
  for (auto s : states) {
    push_outcome o;
    o.state = s;
    o.written = s == outbox_state::applied;
    r.outcomes.push_back(o);
  }
  return r;
}

} // namespace

BOOST_AUTO_TEST_SUITE(push_chain_rules)

BOOST_AUTO_TEST_CASE(a_push_not_sent_behind_another_always_goes) {
  push_chain chain;
  BOOST_TEST(chain.refusal(push_of("v", false)).empty());
  chain.ended("v", nullptr);
  BOOST_TEST(chain.refusal(push_of("v", false)).empty());
}

BOOST_AUTO_TEST_CASE(a_push_behind_one_that_applied_every_write_as_written_goes) {
  push_chain chain;
  auto r = report_of({outbox_state::applied, outbox_state::applied});
  chain.ended("v", &r);
  BOOST_TEST(chain.refusal(push_of("v", true)).empty());
}

BOOST_AUTO_TEST_CASE(a_push_behind_one_with_a_write_untried_failed_or_conflicted_is_refused) {
  push_chain chain;
  auto blocked = report_of({outbox_state::applied, outbox_state::pending});
  chain.ended("v", &blocked);
  auto why = chain.refusal(push_of("v", true));
  BOOST_TEST(why.find("view v") != std::string::npos);
  // Failed and conflicted writes are not in the push bookkeeping: were the
  // view to miss the answer and push them again, they would come after
  // the writes behind them.
  auto failed = report_of({outbox_state::applied, outbox_state::failed});
  chain.ended("v", &failed);
  BOOST_TEST(!chain.refusal(push_of("v", true)).empty());
  auto conflicted = report_of({outbox_state::conflicted, outbox_state::applied});
  chain.ended("v", &conflicted);
  BOOST_TEST(!chain.refusal(push_of("v", true)).empty());
  auto taken_before = report_of({outbox_state::applied});
  taken_before.outcomes[0].written = false;  // applied by an earlier push
  chain.ended("v", &taken_before);
  BOOST_TEST(!chain.refusal(push_of("v", true)).empty());
  chain.ended("v", nullptr);  // the push failed outright
  BOOST_TEST(!chain.refusal(push_of("v", true)).empty());
  // Refused pushes leave it refusing, until a push not sent behind goes clean.
  BOOST_TEST(!chain.refusal(push_of("v", true)).empty());
  auto whole = report_of({outbox_state::applied});
  chain.ended("v", &whole);
  BOOST_TEST(chain.refusal(push_of("v", true)).empty());
}

BOOST_AUTO_TEST_CASE(views_are_judged_apart_and_an_unknown_one_is_refused) {
  push_chain chain;
  BOOST_TEST(!chain.refusal(push_of("v", true)).empty());  // no push ahead of it here
  auto whole = report_of({outbox_state::applied});
  chain.ended("v", &whole);
  chain.ended("w", nullptr);
  BOOST_TEST(chain.refusal(push_of("v", true)).empty());
  BOOST_TEST(!chain.refusal(push_of("w", true)).empty());
}

BOOST_AUTO_TEST_SUITE_END()
