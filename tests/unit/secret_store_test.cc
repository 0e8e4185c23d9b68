#include "engine/store/secret_store.h"
#include "engine/spec/secret_ref.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/fs.h"

namespace ferry {

TEST(SecretStore, KeepsValuesRootOnlyAndRefusesWhatItCannotKeep) {
  TempDir t;
  SecretStore s(t.path() / "secrets");
  struct stat st {};
  ASSERT_EQ(::stat((t.path() / "secrets").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  s.put("db", "hunter2\n", false);
  EXPECT_EQ(s.get("db", "hostA"), "hunter2\n");
  ASSERT_EQ(::stat((t.path() / "secrets/db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // An existing name only with replace.
  EXPECT_THROW(s.put("db", "x", false), Error);
  s.put("db", "new", true);
  EXPECT_EQ(s.get("db", "hostA"), "new");
  EXPECT_THROW(s.put("empty", "", false), Error);
  EXPECT_THROW(s.put("big", std::string(kMaxSecretBytes + 1, 'x'), false), Error);
  EXPECT_THROW(s.put("../escape", "x", false), Error);
  EXPECT_THROW(s.put("db.tmp", "x", false), Error);  // the store's partial writes are NAME.tmp
  s.put("api", "k", false);
  std::vector<SecretInfo> all = s.list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "api");
  EXPECT_EQ(all[1].name, "db");
  EXPECT_EQ(all[1].bytes, 3u);
  s.remove("api");
  EXPECT_FALSE(s.exists("api"));
}

TEST(SecretStore, AMissingSecretSaysWhereAndHowToCreateIt) {
  TempDir t;
  SecretStore s(t.path() / "secrets");
  try {
    s.get("db", "hostB");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("ferry secret create db FILE --host hostB"), std::string::npos)
        << e.what();
  }
}

TEST(SecretStore, ParsesSecretArgumentsAsPodman) {
  SecretRef r = parseSecretArg("db,type=env,target=DB_PASS");
  EXPECT_EQ(r.name, "db");
  EXPECT_EQ(r.target, "DB_PASS");
  EXPECT_EQ(parseSecretArg("token,type=env").target, "token");
  // Podman's default is a mounted file: not built, and said so.
  for (const char* bad : {"db", "db,type=mount", "db,type=env,target=1X", "db,type=env,target=A-B",
                          "db,type=env,mode=0400", "", ",type=env"}) {
    EXPECT_THROW(parseSecretArg(bad), Error) << bad;
  }
  try {
    parseSecretArg("db");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("db,type=env"), std::string::npos) << e.what();
  }
}

}  // namespace ferry
