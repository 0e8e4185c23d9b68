// validateCarriedRecord: a checkpoint's record is checked by the receiver,
// one refused field per test.
#include "engine/store/carried_record.h"

#include <gtest/gtest.h>

#include <functional>

#include "common/error.h"

namespace ferry {
namespace {

ContainerRecord good() {
  ContainerRecord r;
  r.spec.name = "web";
  r.spec.image = "demo";
  r.spec.env = {"A=1"};
  r.spec.cwd = "/srv";
  r.spec.user = "1000:1000";
  r.spec.group_add = {"wheel"};
  r.spec.volumes = {{.name = "data", .destination = "/data", .relabel = 'Z'}};
  r.spec.tmpfs = {{"/run/t", {"rw", "size=1m"}}};
  r.spec.secrets = {{"db", "DB_PASS"}};
  r.spec.sdnotify = "container";
  r.spec.umask = "0022";
  r.spec.stop_signal = "SIGINT";
  r.image_id = std::string(64, 'a');
  r.process_label = "system_u:system_r:container_t:s0:c12,c345";
  r.mount_label = "system_u:object_r:container_file_t:s0:c12,c345";
  r.id_range = {kUsernsFirst + 7 * kUsernsSize, kUsernsSize};  // --userns=auto, the default
  return r;
}

void expectRefused(const std::function<void(ContainerRecord&)>& change, const std::string& says) {
  ContainerRecord r = good();
  change(r);
  try {
    validateCarriedRecord(r);
    ADD_FAILURE() << "accepted; expected a refusal saying " << says;
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput) << e.what();
    EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
  }
}

TEST(CarriedRecord, AUserNamespaceRangeComesOnlyAsFerryGivesOneAndWithAuto) {
  ContainerRecord r = good();
  r.spec.userns = "host";
  r.id_range = {};
  EXPECT_NO_THROW(validateCarriedRecord(r));
  expectRefused([](auto& r) { r.id_range = {}; }, "--userns=auto without a range");
  expectRefused([](auto& r) { r.spec.userns = "host"; },
                "a range of host ids for a container with --userns=host");
  expectRefused([](auto& r) { r.spec.userns = "keep-id"; }, "--userns=keep-id");
  expectRefused(
      [](auto& r) {
        r.id_range = {0, kUsernsSize};  // the target's own root and users
      },
      "user namespace range");
}

TEST(CarriedRecord, ARecordAsFerryWritesOneIsAccepted) {
  EXPECT_NO_THROW(validateCarriedRecord(good()));
  ContainerRecord bare;
  bare.spec.name = "a";
  bare.image_id = std::string(64, '0');
  bare.spec.userns = "host";  // as a record from before user namespaces reads
  EXPECT_NO_THROW(validateCarriedRecord(bare));
}

TEST(CarriedRecord, OverlayVolumesAndHostPathsAreRefused) {
  expectRefused([](auto& r) { r.spec.volumes[0].overlay = true; }, "overlay (O) volume, data");
  expectRefused([](auto& r) { r.spec.volumes[0].upperdir = "/etc"; }, "upperdir /etc");
  expectRefused([](auto& r) { r.spec.volumes[0].workdir = "/etc"; }, "overlay (O) volume");
  expectRefused(
      [](auto& r) {
        r.spec.volumes[0].overlay = true;
        r.spec.volumes[0].upperdir = "/host/dir";
        r.spec.volumes[0].workdir = "/host/work";
      },
      "which ferry does not restore");
}

TEST(CarriedRecord, SocketActivationIsRefused) {
  expectRefused([](auto& r) { r.spec.listen_fds = 2; }, "socket activation");
  expectRefused([](auto& r) { r.spec.listen_fds = -1; }, "socket activation");
  expectRefused([](auto& r) { r.spec.listen_fdnames = "web"; }, "socket activation");
}

TEST(CarriedRecord, VolumeNamesAndDestinations) {
  expectRefused([](auto& r) { r.spec.volumes[0].name = "../x"; }, "volume name");
  expectRefused([](auto& r) { r.spec.volumes[0].destination = "data"; }, "at 'data'");
  expectRefused([](auto& r) { r.spec.volumes[0].destination = "/a/../../etc"; }, "/a/../../etc");
  expectRefused([](auto& r) { r.spec.volumes[0].destination = "/"; }, "at '/'");
  expectRefused([](auto& r) { r.spec.volumes[0].relabel = 'q'; }, "relabel 'q'");
}

TEST(CarriedRecord, TmpfsDestinationsAndOptions) {
  expectRefused([](auto& r) { r.spec.tmpfs[0].destination = "/x/.."; }, "tmpfs");
  expectRefused([](auto& r) { r.spec.tmpfs[0].destination = "/x:rw"; }, "tmpfs");
  expectRefused([](auto& r) { r.spec.tmpfs[0].options = {"rw", "context=x"}; }, "tmpfs option");
}

TEST(CarriedRecord, SecretReferences) {
  expectRefused([](auto& r) { r.spec.secrets[0].name = "../db"; }, "secret name");
  expectRefused([](auto& r) { r.spec.secrets[0].target = "A B"; }, "environment variable");
  expectRefused([](auto& r) { r.spec.secrets[0].target = "X,type=mount"; }, "--secret");
}

TEST(CarriedRecord, SelinuxLabels) {
  expectRefused([](auto& r) { r.process_label = "unconfined_u:unconfined_r:unconfined_t"; },
                "process label");
  expectRefused([](auto& r) { r.process_label = "a:b:c:s0:c1,c2 x"; }, "process label");
  expectRefused([](auto& r) { r.mount_label = "system_u:object_r:x:s0:c1,c9999"; }, "mount label");
  expectRefused([](auto& r) { r.mount_label.clear(); }, "one SELinux label without the other");
  expectRefused([](auto& r) { r.mount_label = "system_u:object_r:container_file_t:s0:c1,c2"; },
                "two levels");
  expectRefused([](auto& r) { r.spec.label_opts = {"nope"}; }, "label=nope");
}

TEST(CarriedRecord, ProcessFields) {
  expectRefused([](auto& r) { r.spec.user = "x;y"; }, "user 'x;y'");
  expectRefused([](auto& r) { r.spec.user = "1:2:3"; }, "user");
  expectRefused([](auto& r) { r.spec.group_add = {"a/b"}; }, "group 'a/b'");
  expectRefused([](auto& r) { r.spec.host_users = {""}; }, "host user");
  expectRefused([](auto& r) { r.spec.cwd = "../x"; }, "working directory");
  expectRefused([](auto& r) { r.spec.env = {"NOEQUALS"}; }, "environment entry");
  expectRefused([](auto& r) { r.spec.env = {"=x"}; }, "environment entry");
  expectRefused([](auto& r) { r.spec.sdnotify = "socket"; }, "--sdnotify=socket");
  expectRefused([](auto& r) { r.spec.umask = "9"; }, "umask");
  expectRefused([](auto& r) { r.spec.stop_signal = "SIGNOPE"; }, "stop signal");
  expectRefused([](auto& r) { r.spec.annotations[""] = "x"; }, "annotation");
  expectRefused([](auto& r) { r.notify_status = "ok\nREADY=1"; }, "notify status");
}

TEST(CarriedRecord, NamesAndImageId) {
  expectRefused([](auto& r) { r.spec.name = "../web"; }, "container name in the checkpoint");
  expectRefused([](auto& r) { r.image_id = "demo"; }, "sha256 digest");
}

}  // namespace
}  // namespace ferry
