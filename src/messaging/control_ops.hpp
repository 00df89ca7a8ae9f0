// The control vocabulary both sides of a channel speak: the ops of kControl frames (a child's
// lifecycle, the master's answers) and the actions of the runtime's own kMessage frames from the
// master. One name each, used by the master and the children alike, so that a typo is a compile
// error rather than a frame the other side quietly ignores. Values are part of the wire format.
// (The shared-payload ops, with the numbers they carry, are in messaging/wire.hpp.)
#pragma once

#include <string_view>

namespace clutch::messaging {

// kControl ops, child -> master.
inline constexpr std::string_view kOpReady = "ready";        // setup done: it may be given work
inline constexpr std::string_view kOpFatal = "fatal";        // setup failed (payload: the error)
inline constexpr std::string_view kOpBeat = "beat";          // its loop turns (hang detection)
inline constexpr std::string_view kOpDraining = "draining";  // it stops taking work
inline constexpr std::string_view kOpMetrics = "metrics";    // its application metrics (text)
inline constexpr std::string_view kOpAnswer = "answer";      // its answer to an operator's ask

// kControl ops, master -> child.
inline constexpr std::string_view kOpDrainOk = "drain-ok";  // nothing but broadcasts follow
inline constexpr std::string_view kOpAsk = "ask";           // an operator's request (JSON)

// Actions of the runtime's kMessage frames from the master; no user handler may take one.
inline constexpr std::string_view kReservedPrefix = "clutch:";
inline constexpr std::string_view kActionReady = "clutch:ready";  // the cluster is ready
inline constexpr std::string_view kActionMembers = "clutch:members";
inline constexpr std::string_view kActionMembersDelta = "clutch:members-delta";
inline constexpr std::string_view kActionPids = "clutch:pids";

}  // namespace clutch::messaging
