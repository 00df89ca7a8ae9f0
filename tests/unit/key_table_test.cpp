#include "master/key_table.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace clutch::master {
namespace {

// A key handled by `pid` through message `id`.
void handle(KeyTable& keys, const std::string& key, uint64_t id, pid_t pid) {
  keys.finish(keys.start(key, id), pid);
}

TEST(KeyTable, AKeyInFlightIsKnownByItsMessageThenByWhoHandledIt) {
  KeyTable keys(3);
  EXPECT_EQ(keys.find("a"), nullptr);
  KeyTable::Handle a = keys.start(std::string("a"), 7);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->key, "a");
  ASSERT_NE(keys.find("a"), nullptr);
  EXPECT_EQ(keys.find("a")->in_flight, 7u);
  keys.finish(a, 42);
  ASSERT_NE(keys.find("a"), nullptr);
  EXPECT_EQ(keys.find("a")->in_flight, 0u);
  EXPECT_EQ(keys.find("a")->handled_by, 42);
}

TEST(KeyTable, AFailedMessagesKeyIsForgottenSoItRunsAgain) {
  KeyTable keys(3);
  keys.finish(keys.start("a", 1), 0);
  EXPECT_EQ(keys.find("a"), nullptr);
  EXPECT_EQ(keys.size(), 0u);
}

TEST(KeyTable, RemembersTheHandledKeysAndForgetsTheOldestPastCapacity) {
  KeyTable keys(3);
  handle(keys, "a", 1, 1);
  handle(keys, "b", 2, 2);
  handle(keys, "c", 3, 3);
  keys.start("x", 9);  // in flight: not counted against the remembered ones
  EXPECT_EQ(keys.find("a")->handled_by, 1);
  handle(keys, "d", 4, 4);  // "a" is the oldest: forgotten
  EXPECT_EQ(keys.find("a"), nullptr);
  EXPECT_EQ(keys.find("b")->handled_by, 2);
  EXPECT_EQ(keys.find("d")->handled_by, 4);
  EXPECT_EQ(keys.find("x")->in_flight, 9u);
  EXPECT_EQ(keys.remembered(), 3u);
}

TEST(KeyTable, AForgottenButStillOrderedKeyCanRunAgainAndIsNeverLeftDangling) {
  KeyTable keys(2);
  handle(keys, "a", 1, 1);
  handle(keys, "b", 2, 2);
  // "a" sent again while remembered would be answered from memory; say its memory was dropped
  // by a failed rerun: started, then failed. The table must not keep a stale pointer to it.
  keys.finish(keys.start("a", 3), 0);
  EXPECT_EQ(keys.find("a"), nullptr);
  handle(keys, "c", 4, 3);  // pushes out the oldest place, "a"'s
  handle(keys, "d", 5, 4);  // and "b"
  EXPECT_EQ(keys.find("a"), nullptr);
  EXPECT_EQ(keys.find("b"), nullptr);
  EXPECT_EQ(keys.find("c")->handled_by, 3);
  EXPECT_EQ(keys.find("d")->handled_by, 4);
  EXPECT_EQ(keys.size(), 2u);
}

TEST(KeyTable, AKeyInFlightOutlivesItsTurnToBeForgotten) {
  KeyTable keys(1);
  handle(keys, "a", 1, 1);
  KeyTable::Handle rerun = keys.start("a", 2);  // in flight again, still in order_
  handle(keys, "b", 3, 2);  // "a"'s turn to be forgotten comes while it is in flight
  ASSERT_NE(keys.find("a"), nullptr);
  EXPECT_EQ(keys.find("a")->in_flight, 2u);
  keys.finish(rerun, 5);
  EXPECT_EQ(keys.find("a")->handled_by, 5);
  EXPECT_EQ(keys.find("b"), nullptr);  // "a" took the one place again
}

TEST(KeyTable, StoppingForgetsTheKeysInFlightAndKeepsTheHandledOnes) {
  KeyTable keys(4);
  handle(keys, "a", 1, 1);
  keys.start("b", 2);
  keys.forget_in_flight();
  EXPECT_EQ(keys.find("b"), nullptr);
  EXPECT_EQ(keys.find("a")->handled_by, 1);
}

TEST(KeyTable, CapacityZeroRemembersNothingHandled) {
  KeyTable keys(0);
  KeyTable::Handle a = keys.start("a", 1);
  EXPECT_EQ(keys.find("a")->in_flight, 1u);
  keys.finish(a, 1);
  EXPECT_EQ(keys.find("a"), nullptr);
}

TEST(KeyTable, FindOrStartStartsANewKeyAndOnlyReportsAKnownOne) {
  KeyTable keys(4);
  KeyTable::Handle first = nullptr;
  EXPECT_EQ(keys.find_or_start("a", 1, first), nullptr);
  ASSERT_NE(first, nullptr);
  KeyTable::Handle again = nullptr;
  const KeyTable::Entry* known = keys.find_or_start("a", 2, again);
  ASSERT_NE(known, nullptr);  // in flight under message 1, which stays its carrier
  EXPECT_EQ(known->in_flight, 1u);
  EXPECT_EQ(again, nullptr);
  keys.finish(first, 9);
  known = keys.find_or_start("a", 3, again);
  ASSERT_NE(known, nullptr);
  EXPECT_EQ(known->handled_by, 9);
  EXPECT_EQ(known->in_flight, 0u);
  EXPECT_EQ(keys.size(), 1u);
}

// The rules above, written the plain way (a map and a queue of names), to check the table's
// probing, growth and backward-shift deletion against over long random runs.
class ModelTable {
 public:
  explicit ModelTable(std::size_t capacity) : capacity_(capacity) {}
  const KeyTable::Entry* find(const std::string& key) const {
    auto it = entries_.find(key);
    if (it == entries_.end() || (it->second.in_flight == 0 && it->second.handled_by == 0))
      return nullptr;
    return &it->second;
  }
  void start(const std::string& key, uint64_t id) {
    auto& e = entries_[key];
    e.in_flight = id;
    e.handled_by = 0;
  }
  void finish(const std::string& key, pid_t pid) {
    auto& e = entries_.at(key);
    e.in_flight = 0;
    e.handled_by = capacity_ == 0 ? 0 : pid;
    if (e.handled_by == 0) return drop(key);
    if (e.ordered) return;
    e.ordered = true;
    order_.push_back(key);
    if (order_.size() > capacity_) {
      std::string oldest = order_.front();
      order_.pop_front();
      auto& o = entries_.at(oldest);
      o.ordered = false;
      o.handled_by = 0;
      if (o.in_flight == 0) entries_.erase(oldest);
    }
  }
  std::size_t size() const { return entries_.size(); }

 private:
  void drop(const std::string& key) {
    if (!entries_.at(key).ordered) entries_.erase(key);
  }
  std::size_t capacity_;
  std::map<std::string, KeyTable::Entry> entries_;
  std::deque<std::string> order_;
};

TEST(KeyTable, AgreesWithThePlainRulesOverLongRandomRuns) {
  for (std::size_t capacity : {0u, 1u, 7u, 64u, 1000u}) {
    std::mt19937 random(static_cast<unsigned>(capacity) + 1);
    KeyTable keys(capacity);
    ModelTable model(capacity);
    std::vector<std::pair<std::string, KeyTable::Handle>> flying;
    uint64_t next_id = 1;
    // Keys from a pool a few times the table's size: repeats (answered from memory), reruns of
    // forgotten keys, growth past several doublings, and long probe runs to shift back.
    std::size_t pool = 3 * capacity + 300;
    for (int step = 0; step < 60000; ++step) {
      std::string key = "k" + std::to_string(random() % pool);
      bool finish_one = !flying.empty() && (random() % 3 == 0 || flying.size() > 500);
      if (!finish_one) {
        KeyTable::Handle h = nullptr;
        const KeyTable::Entry* known = keys.find_or_start(key, next_id, h);
        const KeyTable::Entry* expected = model.find(key);
        ASSERT_EQ(known == nullptr, expected == nullptr) << key << " at step " << step;
        if (known != nullptr) {
          EXPECT_EQ(known->in_flight, expected->in_flight);
          EXPECT_EQ(known->handled_by, expected->handled_by);
        } else {
          ASSERT_NE(h, nullptr);
          EXPECT_EQ(h->key, key);
          model.start(key, next_id);
          flying.emplace_back(key, h);
          ++next_id;
        }
      } else {
        std::size_t pick = random() % flying.size();
        auto [done, h] = flying[pick];
        flying.erase(flying.begin() + static_cast<std::ptrdiff_t>(pick));
        pid_t pid = random() % 5 == 0 ? 0 : static_cast<pid_t>(1 + random() % 9);
        keys.finish(h, pid);
        model.finish(done, pid);
      }
      ASSERT_EQ(keys.size(), model.size()) << "at step " << step;
    }
    for (std::size_t k = 0; k < pool; ++k) {
      std::string key = "k" + std::to_string(k);
      const KeyTable::Entry* got = keys.find(key);
      const KeyTable::Entry* expected = model.find(key);
      ASSERT_EQ(got == nullptr, expected == nullptr) << key;
      if (got != nullptr) EXPECT_EQ(got->handled_by, expected->handled_by) << key;
    }
  }
}

}  // namespace
}  // namespace clutch::master
