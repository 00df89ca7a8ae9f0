// The schedule's two halves: the agent's clock (ticks, overlap, hand-over, listing) and the
// workers' runners. Messages use actions beginning with "schedule:".
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "clutch/schedule.hpp"
#include "runtime/component.hpp"
#include "runtime/operator_commands.hpp"

namespace clutch::schedule {

using JobList = std::vector<JobDeclaration>;

// Throws ConfigError naming the job and the bad setting.
void validate_job(const JobOptions& options);

// `commands` (optional) gets clutchctl's "jobs" and "job-run".
void install_agent_clock(Context& ctx, const JobList& jobs,
                         runtime::OperatorCommands* commands = nullptr);
void install_worker_runners(Context& ctx, const JobList& jobs);

// The schedules as a runtime component: the clock in the agent, the runners in the workers.
std::unique_ptr<runtime::Component> component(JobList jobs);

}  // namespace clutch::schedule
