#include "protocol/figures_json.h"

namespace ferry::proto {

nlohmann::json precopyRoundsJson(capnp::List<MigrationFigures::PrecopyRound>::Reader rounds) {
  nlohmann::json out = nlohmann::json::array();
  for (auto r : rounds) {
    out.push_back({{"round", r.getRound()},
                   {"read_bytes", r.getReadBytes()},
                   {"sent_bytes", r.getSentBytes()},
                   {"wire_bytes", r.getWireBytes()},
                   {"ms", r.getMs()}});
  }
  return out;
}

}  // namespace ferry::proto
