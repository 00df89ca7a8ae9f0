// The idempotency keys the master knows: those of messages in flight (the master id of the
// message carrying each) and those handled lately (who handled each; a bounded number, the
// oldest forgotten first). Pure, no I/O.
//
// Every keyed message (each message from a queue consumer) costs a lookup, an insert, and later
// an eviction, in a table of about 8,000 keys that is cold by the time a key is evicted. With
// std::unordered_map those were bucket walks through cold nodes, a key hashed again to erase it,
// and two allocations per key: about half the master's CPU on a queue consumer's traffic
// (bench/mq, perf). Here the table is an array of (hash, record) slots probed linearly, so a
// lookup touches one or two adjacent slots and a record only when its hash matches; an eviction
// finds its slot by the cached hash and the record's address, without reading the key; and
// records (with their key's buffer) are reused.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace clutch::master {

class KeyTable {
 public:
  explicit KeyTable(std::size_t remembered);
  ~KeyTable();
  KeyTable(const KeyTable&) = delete;
  KeyTable& operator=(const KeyTable&) = delete;

  struct Entry {
    uint64_t in_flight = 0;  // the master id of the message carrying it, or 0
    pid_t handled_by = 0;    // who handled it, or 0
    bool ordered = false;    // order_ points at it: only forget_oldest() removes it then
  };
  struct Record {
    std::string key;
    Entry entry;
    std::size_t hash = 0;
  };
  // A key's record, from start() until its finish(): it never moves, so finish() and the
  // eviction order use it instead of looking the key up again.
  using Handle = Record*;

  // What is known of `key`: in flight or handled; nullptr if nothing.
  const Entry* find(std::string_view key) const;

  // `key` is carried by message `id` from now on, whatever was known of it.
  Handle start(std::string_view key, uint64_t id);

  // One lookup for the common case, a key not seen before: what is known of `key` (in flight or
  // handled; nothing changes), or nullptr when `key` is now carried by message `id` and `started`
  // is its handle.
  const Entry* find_or_start(std::string_view key, uint64_t id, Handle& started);

  // The message carrying the key ended: handled by `handled_by` (remembered), or not (0:
  // forgotten, so that the same key sent again runs again). The handle is spent.
  void finish(Handle key, pid_t handled_by);

  // Every message in flight is gone (the master is stopping): their keys with them.
  void forget_in_flight();

  std::size_t remembered() const { return order_.size(); }
  std::size_t size() const { return size_; }

 private:
  struct Slot {
    std::size_t hash = 0;
    Record* record = nullptr;  // nullptr: empty
  };

  // The slot holding `key`, or the empty slot where it would go.
  std::size_t probe(std::string_view key, std::size_t hash) const;
  // `key`'s record, added (with an empty entry) if it has none.
  Handle locate(std::string_view key);
  // The record now stands for message `id`, in flight.
  static Handle carry(Handle key, uint64_t id);
  Handle insert(std::string_view key, std::size_t hash, std::size_t slot);
  // Removed, unless order_ still points at it: then an empty entry find() does not see, until
  // its turn in order_ comes.
  void drop(Handle key);
  void forget_oldest();
  void erase(Handle key);
  void grow();

  std::size_t capacity_;
  std::vector<Slot> slots_;  // a power of two, at most 3/4 full
  std::size_t size_ = 0;
  std::deque<Handle> order_;                    // handled keys, oldest first
  std::vector<std::unique_ptr<Record>> spare_;  // records to reuse (bounded)
};

}  // namespace clutch::master
