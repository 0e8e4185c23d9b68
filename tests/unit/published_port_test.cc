#include <gtest/gtest.h>

#include "common/error.h"
#include "common/ipv4.h"

namespace ferry {
namespace {

TEST(PublishedPort, ParsesAndSaysWhatIsWrong) {
  EXPECT_EQ(toString(parsePublish("8080:80")), "8080:80/tcp");
  EXPECT_EQ(toString(parsePublish("53:5353/udp")), "53:5353/udp");
  for (const char* bad : {"80", "0:80", "8080:65536", "8080:80/sctp", "a:80", "8080:080", ":80"}) {
    try {
      parsePublish(bad);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace ferry
