// Smart ReID's dashboard cards, loaded on every dashboard by the integration
// (custom_components/smart_reid/frontend.py).
import { SmartReidPeopleCard } from "./people-card";
import { SmartReidVisitsCard } from "./visits-card";
import { SmartReidPeopleCardEditor, SmartReidVisitsCardEditor } from "./editors";
import { t } from "./i18n";

const ELEMENTS: [string, CustomElementConstructor][] = [
  ["smart-reid-people-card", SmartReidPeopleCard],
  ["smart-reid-visits-card", SmartReidVisitsCard],
  ["smart-reid-people-card-editor", SmartReidPeopleCardEditor],
  ["smart-reid-visits-card-editor", SmartReidVisitsCardEditor],
];

for (const [name, element] of ELEMENTS) {
  // Loaded twice (an old resource left over, a second dashboard bundle): keep the first.
  if (!customElements.get(name)) customElements.define(name, element);
}

interface CustomCardEntry {
  type: string;
  name: string;
  description: string;
  preview: boolean;
  documentationURL: string;
}

const w = window as unknown as { customCards?: CustomCardEntry[] };
w.customCards = w.customCards ?? [];
const docs = "https://github.com/smart-reid/smart-reid/blob/main/docs/integration.md#dashboard-cards";
for (const [type, name, description] of [
  ["smart-reid-people-card", "Smart ReID people", t(undefined, "people_card_desc")],
  ["smart-reid-visits-card", "Smart ReID visits", t(undefined, "visits_card_desc")],
]) {
  if (!w.customCards.some((c) => c.type === type)) {
    w.customCards.push({ type, name, description, preview: false, documentationURL: docs });
  }
}
