// Migration figures as one record and their one JSON form: the round trip,
// the exact keys `ferry migrate|history --json` print, and the rows earlier
// coordinators stored.
#include "protocol/figures_json.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"

namespace ferry::proto {
namespace {

using nlohmann::json;

std::set<std::string> keysOf(const json& j) {
  std::set<std::string> keys;
  for (const auto& [k, v] : j.items()) keys.insert(k);
  return keys;
}

const std::set<std::string> kFigureKeys = {"id",
                                           "container",
                                           "source",
                                           "target",
                                           "outcome",
                                           "downtime_ms",
                                           "total_ms",
                                           "bytes_raw",
                                           "bytes_wire",
                                           "final_bytes_wire",
                                           "bytes_referenced",
                                           "precopy",
                                           "precopy_rounds",
                                           "postcopy",
                                           "postcopy_ms",
                                           "bytes_on_demand",
                                           "bytes_pushed",
                                           "bytes_held",
                                           "link_bytes_per_s",
                                           "compression",
                                           "phase_ms",
                                           "started_ms",
                                           "error",
                                           "warnings"};

// Every field set, 64-bit ones beyond 32 bits.
void fillAll(MigrationFigures::Builder f) {
  f.setId(7);
  f.setContainer("web");
  f.setSource("hostA");
  f.setTarget("hostB");
  f.setOutcome("committed");
  f.setDowntimeMs(412);
  f.setTotalMs(90061);
  f.setBytesRaw(uint64_t{5} << 30);
  f.setBytesWire((uint64_t{5} << 30) - 12345);
  auto ph = f.initPhaseMs(2);
  ph[0].setPhase("dump");
  ph[0].setMs(40);
  ph[1].setPhase("restore \"quoted\"\n");
  ph[1].setMs(300);
  f.setError("");
  f.setCompression("zstd level 1 (the target, 10.0.0.2, is not on this machine)");
  f.setStartedMs(1764921600123);
  auto w = f.initWarnings(1);
  w.set(0, "kernel differs: 6.1 vs 6.6");
  f.setPrecopy("2 rounds; stopped: the delta stopped shrinking");
  auto r = f.initRounds(2);
  r[0].setRound(1);
  r[0].setReadBytes(uint64_t{3} << 32);
  r[0].setSentBytes(1000);
  r[0].setWireBytes(600);
  r[0].setMs(1200);
  r[1].setRound(2);
  f.setFinalBytesWire(9007199254740992);  // 2^53, the largest exact
  f.setBytesReferenced(4096);
  f.setPostcopy("on (asked)");
  f.setPostcopyMs(uint64_t{6} << 32);
  f.setBytesOnDemand(uint64_t{7} << 32);
  f.setBytesPushed(uint64_t{8} << 32);
  f.setBytesHeld(uint64_t{9} << 32);
  f.setLinkBytesPerS(uint64_t{10} << 32);
}

TEST(FiguresJson, RoundTripsEveryField) {
  FiguresRecord a;
  fillAll(a.get());
  std::string text = figuresJson(a.reader());
  FiguresRecord b;
  figuresFromJson(text, b.get());
  EXPECT_EQ(kj::str(a.reader()).cStr(), std::string(kj::str(b.reader()).cStr())) << text;
  EXPECT_EQ(figuresJson(b.reader()), text);
  // Indented for people, the same document.
  EXPECT_EQ(json::parse(figuresJson(a.reader(), true)), json::parse(text));
}

TEST(FiguresJson, KeysAreTheSnakeCaseOnesTheCliAlwaysPrinted) {
  FiguresRecord a;
  fillAll(a.get());
  json j = json::parse(figuresJson(a.reader()));
  EXPECT_EQ(keysOf(j), kFigureKeys);
  EXPECT_EQ(keysOf(j["precopy_rounds"][0]),
            (std::set<std::string>{"round", "read_bytes", "sent_bytes", "wire_bytes", "ms"}));
  EXPECT_EQ(keysOf(j["phase_ms"][0]), (std::set<std::string>{"phase", "ms"}));
  // 64-bit integers are numbers, not the codec's default strings.
  EXPECT_TRUE(j["bytes_raw"].is_number_unsigned()) << j["bytes_raw"];
  EXPECT_EQ(j["bytes_raw"].get<uint64_t>(), uint64_t{5} << 30);
  EXPECT_EQ(j["started_ms"].get<int64_t>(), 1764921600123);
  EXPECT_EQ(j["final_bytes_wire"].get<uint64_t>(), uint64_t{1} << 53);
  EXPECT_EQ(j["link_bytes_per_s"].get<uint64_t>(), uint64_t{10} << 32);
  EXPECT_EQ(j["precopy_rounds"][0]["read_bytes"].get<uint64_t>(), uint64_t{3} << 32);
  EXPECT_EQ(j["phase_ms"][1]["phase"], "restore \"quoted\"\n");
  EXPECT_EQ(j["warnings"], json::array({"kernel differs: 6.1 vs 6.6"}));
}

TEST(FiguresJson, AnEmptyRecordStillHasEveryKey) {
  FiguresRecord empty;
  json j = json::parse(figuresJson(empty.reader()));
  EXPECT_EQ(keysOf(j), kFigureKeys);
  EXPECT_EQ(j["compression"], "");
  EXPECT_EQ(j["error"], "");
  EXPECT_EQ(j["phase_ms"], json::array());
  EXPECT_EQ(j["precopy_rounds"], json::array());
  EXPECT_EQ(j["warnings"], json::array());
  EXPECT_EQ(j["downtime_ms"], 0);
}

TEST(FiguresJson, AListIsOneArrayOfRecords) {
  capnp::MallocMessageBuilder m;
  auto orphan = m.getOrphanage().newOrphan<capnp::List<MigrationFigures>>(2);
  fillAll(orphan.get()[0]);
  json j = json::parse(figuresJson(orphan.getReader(), true));
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(keysOf(j[0]), kFigureKeys);
  EXPECT_EQ(keysOf(j[1]), kFigureKeys) << "an unset element has every key too";
  EXPECT_EQ(j[0]["container"], "web");
}

// What coordinators before the codec stored (nlohmann's dump of the
// figures they kept): the same keys, sorted, without the row's own fields.
TEST(FiguresJson, RowsStoredByEarlierCoordinatorsStillRead) {
  const char* old =
      R"j({"bytes_raw":104857600,"bytes_referenced":0,"bytes_wire":104900000,)j"
      R"j("compression":"none (loopback: compressing would cost more time than it saves)",)j"
      R"j("downtime_ms":412,"final_bytes_wire":104900000,)j"
      R"j("phase_ms":[{"ms":3,"phase":"plan"},{"ms":40,"phase":"dump"}],)j"
      R"j("precopy":"off","precopy_rounds":[{"ms":5,"read_bytes":6,"round":1,)j"
      R"j("sent_bytes":7,"wire_bytes":8}],"total_ms":900,"warnings":["w1"]})j";
  FiguresRecord r;
  figuresFromJson(old, r.get());
  auto f = r.reader();
  EXPECT_EQ(f.getBytesRaw(), 104857600u);
  EXPECT_EQ(f.getBytesWire(), 104900000u);
  EXPECT_EQ(f.getDowntimeMs(), 412u);
  EXPECT_EQ(f.getTotalMs(), 900u);
  EXPECT_EQ(std::string(f.getCompression().cStr()),
            "none (loopback: compressing would cost more time than it saves)");
  ASSERT_EQ(f.getPhaseMs().size(), 2u);
  EXPECT_EQ(std::string(f.getPhaseMs()[1].getPhase().cStr()), "dump");
  EXPECT_EQ(f.getPhaseMs()[1].getMs(), 40u);
  ASSERT_EQ(f.getRounds().size(), 1u);
  EXPECT_EQ(f.getRounds()[0].getWireBytes(), 8u);
  ASSERT_EQ(f.getWarnings().size(), 1u);
  EXPECT_EQ(std::string(f.getWarnings()[0].cStr()), "w1");
  // And the one-key row of the state store's own test.
  FiguresRecord small;
  figuresFromJson(R"({"downtime_ms":120})", small.get());
  EXPECT_EQ(small.reader().getDowntimeMs(), 120u);
}

TEST(FiguresJson, ReadsNumbersWrittenAsStringsAndIgnoresUnknownKeys) {
  FiguresRecord r;
  figuresFromJson(R"({"downtime_ms":"18446744073709551615","started_ms":"-5","later":{"x":1}})",
                  r.get());
  EXPECT_EQ(r.reader().getDowntimeMs(), UINT64_MAX);
  EXPECT_EQ(r.reader().getStartedMs(), -5);
}

TEST(FiguresJson, RefusesWhatIsNotFigures) {
  for (const char* bad :
       {"", "not json", "[1,2]", R"({"downtime_ms":-1})", R"({"downtime_ms":1.5})",
        R"({"downtime_ms":"12x"})", R"({"total_ms":1e30})", R"({"phase_ms":{"phase":"dump"}})"}) {
    FiguresRecord r;
    try {
      figuresFromJson(bad, r.get());
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput) << bad;
    }
  }
}

TEST(FiguresRecord, PhasesAppendInOrderAndWarningsReplace) {
  FiguresRecord r;
  r.addPhase("plan", 1);
  r.addPhase("prepare", 2);
  r.addPhase("commit", 3);
  ASSERT_EQ(r.reader().getPhaseMs().size(), 3u);
  EXPECT_EQ(std::string(r.reader().getPhaseMs()[0].getPhase().cStr()), "plan");
  EXPECT_EQ(std::string(r.reader().getPhaseMs()[2].getPhase().cStr()), "commit");
  EXPECT_EQ(r.reader().getPhaseMs()[1].getMs(), 2u);
  r.setWarnings({"a", "b"});
  r.setWarnings({"c"});
  ASSERT_EQ(r.reader().getWarnings().size(), 1u);
  FiguresRecord moved = std::move(r);
  EXPECT_EQ(std::string(moved.reader().getWarnings()[0].cStr()), "c");
}

}  // namespace
}  // namespace ferry::proto
