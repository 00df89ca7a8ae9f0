// One admission rule for every operator action, whoever asks (master/admission.hpp).
#include "master/admission.hpp"

#include <gtest/gtest.h>

namespace clutch::master {
namespace {

TEST(Admission, OnlyARunningClusterTakesAnOperation) {
  EXPECT_EQ(refusal({false, "starting"}), "the cluster is starting");
  EXPECT_EQ(refusal({false, "stopping"}), "the cluster is stopping");
  EXPECT_EQ(refusal({true, "running"}), "");
}

TEST(Admission, OneOperationAtATimeAndTheRunningOneIsNamed) {
  Activity reloading{true, "reloading", true, false, false};
  Activity scaling{true, "scaling", false, true, false};
  Activity upgrading{true, "upgrading", false, false, true};
  EXPECT_EQ(refusal(reloading), "a reload is in progress");
  EXPECT_EQ(refusal(scaling), "a scale is in progress");
  // An upgrade outranks the others: the old master is handing everything over.
  EXPECT_EQ(refusal(upgrading), "an upgrade is in progress");
  EXPECT_EQ(refusal({true, "upgrading", true, true, true}), "an upgrade is in progress");
}

TEST(Admission, ScaleTargetsAreOneToTheWorkersBound) {
  EXPECT_EQ(scale_target_refusal(1), "");
  EXPECT_EQ(scale_target_refusal(1024), "");
  EXPECT_EQ(scale_target_refusal(0), "cannot scale to 0 workers: from 1 to 1024");
  EXPECT_EQ(scale_target_refusal(1025), "cannot scale to 1025 workers: from 1 to 1024");
  EXPECT_EQ(scale_target_refusal(-3), "cannot scale to -3 workers: from 1 to 1024");
}

}  // namespace
}  // namespace clutch::master
