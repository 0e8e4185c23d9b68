#include "common/error.h"

#include <gtest/gtest.h>

namespace ferry {

TEST(Error, ContextIsAddedOutermostFirst) {
  try {
    withContext("restoring web on hostB", [] {
      withContext("runc restore", [] {
        throw Error(ErrorCategory::kPermanent, "CRIU failed");
      });
    });
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "restoring web on hostB: runc restore: CRIU failed");
    EXPECT_EQ(e.category(), ErrorCategory::kPermanent);
    ASSERT_EQ(e.context().size(), 2u);
    EXPECT_EQ(e.context()[0], "restoring web on hostB");
  }
}

TEST(Error, ErrnoIsRenderedAndCategorised) {
  try {
    throwErrno("open /nope", ENOENT);
  } catch (const Error& e) {
    EXPECT_EQ(e.errnum(), ENOENT);
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("open /nope: No such file or directory"), std::string::npos);
  }
  try {
    throwErrno("mount", EBUSY);
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kRetryable);
  }
  try {
    throwErrno("write", ENOSPC);
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kPermanent);
  }
}

}  // namespace ferry
