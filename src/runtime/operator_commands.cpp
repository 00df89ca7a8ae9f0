#include "runtime/operator_commands.hpp"

#include <fmt/format.h>

#include <memory>

namespace clutch::runtime {

void OperatorCommands::handle(std::string_view payload,
                              std::function<void(std::string)> send) const {
  nlohmann::json request = nlohmann::json::parse(payload, nullptr, false);
  if (!request.is_object() || !request.contains("id") || !request["id"].is_number_unsigned())
    return;  // the master only sends well-formed asks; nothing to answer to
  uint64_t id = request["id"];
  auto answered = std::make_shared<bool>(false);
  Reply reply = [id, send, answered](nlohmann::json answer) {
    if (*answered) return;
    *answered = true;
    if (!answer.is_object()) answer = {{"ok", false}, {"error", "bad answer"}};
    if (!answer.contains("ok")) answer["ok"] = true;
    answer["id"] = id;
    send(answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  };
  std::string cmd = request.value("cmd", "");
  auto it = handlers_.find(cmd);
  if (it == handlers_.end()) {
    return reply({{"ok", false}, {"error", fmt::format("this process has no '{}' command", cmd)}});
  }
  try {
    it->second(request, reply);
  } catch (const std::exception& e) {
    reply({{"ok", false}, {"error", e.what()}});
  }
}

}  // namespace clutch::runtime
