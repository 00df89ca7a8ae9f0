// The idempotency keys of messages handled lately, and who handled each: a bounded set that
// forgets the oldest first. Pure, no I/O.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/string_hash.hpp"

namespace clutch::master {

class RecentKeys {
 public:
  explicit RecentKeys(std::size_t capacity) : capacity_(capacity) {}

  // Who handled `key`, if it is still remembered.
  std::optional<pid_t> find(std::string_view key) const {
    auto it = handled_by_.find(key);
    if (it == handled_by_.end()) return std::nullopt;
    return it->second;
  }

  void remember(const std::string& key, pid_t handled_by) {
    if (capacity_ == 0) return;
    auto [it, added] = handled_by_.insert_or_assign(key, handled_by);
    if (!added) return;
    order_.push_back(key);
    if (order_.size() > capacity_) {
      handled_by_.erase(order_.front());
      order_.pop_front();
    }
  }

  std::size_t size() const { return order_.size(); }

 private:
  std::size_t capacity_;
  std::unordered_map<std::string, pid_t, StringHash, std::equal_to<>> handled_by_;
  std::deque<std::string> order_;
};

}  // namespace clutch::master
