// The idempotency keys the master knows: those of messages in flight (the master id of the
// message carrying each) and those handled lately (who handled each; a bounded number, the
// oldest forgotten first). Pure, no I/O.
//
// One table for both, each key hashed and stored once: the two maps and the deque of copies it
// replaced hashed a key about five times and copied it three times per message, about 45% of the
// master's samples on a queue consumer's traffic (bench/mq, perf).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <iterator>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/string_hash.hpp"

namespace clutch::master {

class KeyTable {
 public:
  explicit KeyTable(std::size_t remembered) : capacity_(remembered) {}

  struct Entry {
    uint64_t in_flight = 0;  // the master id of the message carrying it, or 0
    pid_t handled_by = 0;    // who handled it, or 0
    bool ordered = false;    // order_ points at it: only forget_oldest() erases it then
  };

  // What is known of `key`: in flight or handled; nullptr if nothing.
  const Entry* find(std::string_view key) const {
    auto it = entries_.find(key);
    if (it == entries_.end() || (it->second.in_flight == 0 && it->second.handled_by == 0))
      return nullptr;
    return &it->second;
  }

  // `key` is carried by message `id` from now on. The view returned is the table's copy of the
  // key, valid until finish() or forget_in_flight().
  std::string_view start(std::string_view key, uint64_t id) {
    auto [it, added] = entries_.try_emplace(std::string(key));
    it->second.in_flight = id;
    it->second.handled_by = 0;
    return it->first;
  }

  // The message carrying `key` ended: handled by `handled_by` (remembered), or not (0: forgotten,
  // so that the same key sent again runs again).
  void finish(std::string_view key, pid_t handled_by) {
    auto it = entries_.find(key);
    if (it == entries_.end()) return;
    it->second.in_flight = 0;
    it->second.handled_by = capacity_ == 0 ? 0 : handled_by;
    if (it->second.handled_by == 0) return drop(it);
    if (it->second.ordered) return;  // remembered before: keeps its place
    it->second.ordered = true;
    order_.push_back(&it->first);
    if (order_.size() > capacity_) forget_oldest();
  }

  // Every message in flight is gone (the master is stopping): their keys with them.
  void forget_in_flight() {
    for (auto it = entries_.begin(); it != entries_.end();) {
      auto next = std::next(it);
      if (it->second.in_flight != 0) {
        it->second.in_flight = 0;
        if (it->second.handled_by == 0) drop(it);
      }
      it = next;
    }
  }

  std::size_t remembered() const { return order_.size(); }
  std::size_t size() const { return entries_.size(); }

 private:
  using Entries = std::unordered_map<std::string, Entry, StringHash, std::equal_to<>>;

  // Erased, unless order_ still points at it: then an empty entry find() does not see, until
  // its turn in order_ comes.
  void drop(Entries::iterator it) {
    if (!it->second.ordered) entries_.erase(it);
  }

  void forget_oldest() {
    const std::string* oldest = order_.front();
    order_.pop_front();
    auto it = entries_.find(*oldest);
    it->second.ordered = false;
    it->second.handled_by = 0;
    // Sent again after it was handled, and in flight once more: it stays until that ends.
    if (it->second.in_flight == 0) entries_.erase(it);
  }

  std::size_t capacity_;
  // Node-based, so the keys order_ points at never move.
  Entries entries_;
  std::deque<const std::string*> order_;  // handled keys, oldest first
};

}  // namespace clutch::master
