#include "master/key_table.hpp"

#include <functional>
#include <utility>

namespace clutch::master {
namespace {

constexpr std::size_t kMinSlots = 64;
// Records kept for reuse past a burst: enough for the steady state of a busy consumer (the
// remembered keys turn over, plus a window in flight) without holding a burst's peak for good.
constexpr std::size_t kMaxSpare = 4096;

std::size_t hash_of(std::string_view key) {
  return std::hash<std::string_view>{}(key);
}

}  // namespace

KeyTable::KeyTable(std::size_t remembered) : capacity_(remembered), slots_(kMinSlots) {}

KeyTable::~KeyTable() {
  for (Slot& s : slots_) delete s.record;
}

std::size_t KeyTable::probe(std::string_view key, std::size_t hash) const {
  std::size_t mask = slots_.size() - 1;
  for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.record == nullptr || (s.hash == hash && s.record->key == key)) return i;
  }
}

const KeyTable::Entry* KeyTable::find(std::string_view key) const {
  const Slot& s = slots_[probe(key, hash_of(key))];
  if (s.record == nullptr) return nullptr;
  const Entry& e = s.record->entry;
  return e.in_flight == 0 && e.handled_by == 0 ? nullptr : &e;
}

KeyTable::Handle KeyTable::locate(std::string_view key) {
  std::size_t hash = hash_of(key);
  std::size_t slot = probe(key, hash);
  return slots_[slot].record != nullptr ? slots_[slot].record : insert(key, hash, slot);
}

KeyTable::Handle KeyTable::carry(Handle key, uint64_t id) {
  key->entry.in_flight = id;
  key->entry.handled_by = 0;
  return key;
}

KeyTable::Handle KeyTable::start(std::string_view key, uint64_t id) {
  return carry(locate(key), id);
}

const KeyTable::Entry* KeyTable::find_or_start(std::string_view key, uint64_t id, Handle& started) {
  Handle h = locate(key);  // a key just added has an empty entry: nothing known
  if (h->entry.in_flight != 0 || h->entry.handled_by != 0) return &h->entry;
  started = carry(h, id);
  return nullptr;
}

void KeyTable::finish(Handle key, pid_t handled_by) {
  Entry& e = key->entry;
  e.in_flight = 0;
  e.handled_by = capacity_ == 0 ? 0 : handled_by;
  if (e.handled_by == 0) return drop(key);
  if (e.ordered) return;  // remembered before: keeps its place
  e.ordered = true;
  order_.push_back(key);
  if (order_.size() > capacity_) forget_oldest();
}

void KeyTable::forget_in_flight() {
  // Collected first: erasing shifts slots, which a walk over them would then skip or revisit.
  std::vector<Handle> gone;
  for (Slot& s : slots_) {
    if (s.record == nullptr || s.record->entry.in_flight == 0) continue;
    s.record->entry.in_flight = 0;
    if (s.record->entry.handled_by == 0) gone.push_back(s.record);
  }
  for (Handle h : gone) drop(h);
}

KeyTable::Handle KeyTable::insert(std::string_view key, std::size_t hash, std::size_t slot) {
  if ((size_ + 1) * 4 > slots_.size() * 3) {
    grow();
    slot = probe(key, hash);
  }
  std::unique_ptr<Record> r;
  if (!spare_.empty()) {
    r = std::move(spare_.back());
    spare_.pop_back();
  } else {
    r = std::make_unique<Record>();
  }
  r->key.assign(key);  // a reused record's buffer usually has room: no allocation
  r->entry = Entry{};
  r->hash = hash;
  slots_[slot] = Slot{hash, r.get()};
  ++size_;
  return r.release();
}

void KeyTable::drop(Handle key) {
  if (!key->entry.ordered) erase(key);
}

void KeyTable::forget_oldest() {
  Handle oldest = order_.front();
  order_.pop_front();
  // The oldest keys are cold by their turn (about `capacity_` messages ago): fetch the record
  // after next, and the slot of the next (whose record the previous turn fetched), ahead of
  // their turns.
  if (order_.size() > 1) __builtin_prefetch(order_[1]);
  if (!order_.empty()) __builtin_prefetch(&slots_[order_.front()->hash & (slots_.size() - 1)]);
  oldest->entry.ordered = false;
  oldest->entry.handled_by = 0;
  // Sent again after it was handled, and in flight once more: it stays until that ends.
  if (oldest->entry.in_flight == 0) erase(oldest);
}

void KeyTable::erase(Handle key) {
  std::size_t mask = slots_.size() - 1;
  std::size_t i = key->hash & mask;
  while (slots_[i].record != key) i = (i + 1) & mask;  // by address: the key is not read
  // Backward shift: each later slot of the run moves into the hole unless its home lies
  // cyclically after the hole (then it is already as near its home as the hole would put it).
  for (std::size_t j = (i + 1) & mask; slots_[j].record != nullptr; j = (j + 1) & mask) {
    std::size_t home = slots_[j].hash & mask;
    bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (stays) continue;
    slots_[i] = slots_[j];
    i = j;
  }
  slots_[i] = Slot{};
  --size_;
  if (spare_.size() < kMaxSpare)
    spare_.emplace_back(key);
  else
    delete key;
}

void KeyTable::grow() {
  std::vector<Slot> old = std::exchange(slots_, std::vector<Slot>(slots_.size() * 2));
  std::size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.record == nullptr) continue;
    std::size_t i = s.hash & mask;
    while (slots_[i].record != nullptr) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

}  // namespace clutch::master
