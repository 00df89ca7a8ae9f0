// An operator's commands that a child answers (clutchctl jobs, queue ...): the master passes the
// request on as a kControl "ask" and the child's "answer" back, and never waits on a child that
// died or went silent.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "master/supervisor.hpp"
#include "messaging/control_ops.hpp"

namespace clutch::master {

void Supervisor::ask(Child& child, nlohmann::json request, ControlServer::Answer answer,
                     Millis timeout) {
  uint64_t id = next_ask_++;
  request["id"] = id;
  PendingAsk pending{child.pid, std::move(answer), std::make_unique<asio::steady_timer>(io_)};
  pending.timer->expires_after(timeout);
  pending.timer->async_wait([this, id, timeout](const asio::error_code& ec) {
    if (ec) return;
    auto it = asks_.find(id);
    if (it == asks_.end()) return;
    auto answer = std::move(it->second.answer);
    asks_.erase(it);
    answer({{"ok", false}, {"error", fmt::format("no answer within {} ms", timeout.count())}},
           true);
  });
  asks_.emplace(id, std::move(pending));
  router_.send_control(child, messaging::kOpAsk, request.dump());
}

void Supervisor::on_answer(Child& child, std::string_view payload) {
  nlohmann::json answer = nlohmann::json::parse(payload, nullptr, false);
  if (!answer.is_object() || !answer.contains("id") || !answer["id"].is_number_unsigned()) {
    spdlog::warn("{} sent an answer the master cannot read: ignored", child.describe());
    return;
  }
  auto it = asks_.find(answer["id"].get<uint64_t>());
  if (it == asks_.end() || it->second.pid != child.pid) return;  // timed out already
  auto waiter = std::move(it->second.answer);
  it->second.timer->cancel();
  asks_.erase(it);
  answer.erase("id");
  waiter(answer, true);
}

void Supervisor::fail_asks(pid_t pid, const std::string& why) {
  for (auto it = asks_.begin(); it != asks_.end();) {
    if (it->second.pid != pid) {
      ++it;
      continue;
    }
    auto waiter = std::move(it->second.answer);
    it->second.timer->cancel();
    it = asks_.erase(it);
    waiter({{"ok", false}, {"error", why}}, true);
  }
}

void Supervisor::ask_agent(const nlohmann::json& request, ControlServer::Answer answer) {
  Child* agent = children_.find(agent_slot_.current);
  if (agent == nullptr || agent->state != ChildState::kReady || !agent->connected()) {
    return answer({{"ok", false}, {"error", "the agent is not running now (restarting?)"}}, true);
  }
  // A run of a job is answered when it ends; the client says how long it waits.
  Millis timeout{10'000};
  if (request.contains("timeout_ms") && request["timeout_ms"].is_number_unsigned())
    timeout = Millis(std::min<uint64_t>(request["timeout_ms"].get<uint64_t>(), 86'400'000));
  ask(*agent, request, std::move(answer), timeout);
}

}  // namespace clutch::master
