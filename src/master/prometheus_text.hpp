// Writes the Prometheus text exposition format (version 0.0.4): one HELP and TYPE line per
// family, then its samples with escaped label values. Pure.
#pragma once

#include <fmt/format.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace clutch::master {

class PrometheusText {
 public:
  using Labels = std::initializer_list<std::pair<std::string_view, std::string>>;

  // Starts a family; `type` is counter, gauge or histogram.
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, escape(help, false), name, type);
  }
  void sample(std::string_view name, double value, Labels labels = {}) {
    labelled(name, value, labels);
  }
  void sample(std::string_view name, double value,
              const std::vector<std::pair<std::string, std::string>>& labels) {
    labelled(name, value, labels);
  }
  const std::string& text() const { return out_; }

 private:
  template <typename LabelList>
  void labelled(std::string_view name, double value, const LabelList& labels) {
    out_ += name;
    if (labels.size() > 0) {
      out_ += '{';
      bool first = true;
      for (const auto& [key, text] : labels) {
        if (!first) out_ += ',';
        first = false;
        out_ += fmt::format("{}=\"{}\"", key, escape(text, true));
      }
      out_ += '}';
    }
    out_ += fmt::format(" {}\n", value);
  }
  // Backslash and newline always; double quotes in label values only (HELP keeps them as is).
  static std::string escape(std::string_view text, bool quotes) {
    std::string out;
    for (char c : text) {
      if (c == '\\' || (quotes && c == '"'))
        out += '\\', out += c;
      else if (c == '\n')
        out += "\\n";
      else
        out += c;
    }
    return out;
  }
  std::string out_;
};

}  // namespace clutch::master
