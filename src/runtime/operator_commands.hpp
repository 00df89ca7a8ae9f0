// What the master may ask of an agent or worker on an operator's behalf (clutchctl jobs, queue):
// kControl "ask" frames carry {"id":N,"cmd":NAME,...}; the process answers with an "answer"
// frame {"id":N,"ok":true|false,...}. Features (schedules, queues) register their commands at
// setup; an unknown command is answered with an error, never ignored.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace clutch::runtime {

class OperatorCommands {
 public:
  // Called once with the answer object (an "ok" member is added when missing); may be later.
  using Reply = std::function<void(nlohmann::json)>;
  using Handler = std::function<void(const nlohmann::json& request, Reply reply)>;

  void add(std::string cmd, Handler handler) { handlers_[std::move(cmd)] = std::move(handler); }
  // Runs the command in `payload`; `send` gets the encoded answer frame's payload.
  void handle(std::string_view payload, std::function<void(std::string)> send) const;

 private:
  std::map<std::string, Handler, std::less<>> handlers_;
};

}  // namespace clutch::runtime
