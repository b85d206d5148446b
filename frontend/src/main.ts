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

/** Define the cards on the page's current registry; returns how many it had to define. */
export function defineCards(registry: CustomElementRegistry = window.customElements): number {
  let defined = 0;
  for (const [name, element] of ELEMENTS) {
    // Loaded twice (an old resource left over, a second dashboard bundle): keep the first.
    if (registry.get(name)) continue;
    registry.define(name, element);
    defined += 1;
  }
  return defined;
}

defineCards();

// Home Assistant's app bundle replaces `window.customElements` with a scoped-registry shim
// while it boots (home-assistant/frontend#52960). The integration's module is loaded beside
// that bundle, and when it runs first (a warm cache, a slow app bundle) its definitions land
// in the browser's own registry, which the shim does not consult: every card then shows
// "Custom element doesn't exist" until a reload. The app defines `home-assistant` after the
// shim is in place, and that definition reaches the registry seen now either way, so once it
// exists the cards are defined again on whichever registry is current (a no-op when they are
// already visible there).
const atLoad = window.customElements;
void atLoad.whenDefined("home-assistant").then(() => {
  if (window.customElements !== atLoad && defineCards() > 0) {
    console.info("Smart ReID cards: defined again after Home Assistant's element registry changed");
  }
});

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
