import { LitElement, html, css, nothing, type PropertyValues, type TemplateResult } from "lit";
import { t } from "./i18n";
import { cameraName, clockTime, durationText, pathText, selectPeople, sinceText, visitDuration } from "./format";
import { shared } from "./styles";
import type {
  HomeAssistant,
  PeopleAnswer,
  PeopleCardConfig,
  PeopleFilter,
  PeopleSort,
  PersonItem,
  VisitItem,
  VisitsAnswer,
} from "./types";

type Mode = "view" | "rename" | "merge" | "forget";

export class SmartReidPeopleCard extends LitElement {
  declare hass: HomeAssistant | undefined;
  declare private _config: PeopleCardConfig;
  declare private _data: PeopleAnswer | undefined;
  declare private _error: string | undefined;
  declare private _filter: PeopleFilter;
  declare private _sort: PeopleSort;
  declare private _selected: PersonItem | undefined;
  declare private _history: VisitItem[] | undefined;
  declare private _mode: Mode;
  declare private _busy: boolean;
  declare private _actionError: string | undefined;
  declare private _mergeWith: PersonItem | undefined;
  private _unsubscribe?: Promise<() => Promise<void>>;
  private _subscribedHass?: HomeAssistant;

  static properties = {
    hass: { attribute: false },
    _config: { state: true },
    _data: { state: true },
    _error: { state: true },
    _filter: { state: true },
    _sort: { state: true },
    _selected: { state: true },
    _history: { state: true },
    _mode: { state: true },
    _busy: { state: true },
    _actionError: { state: true },
    _mergeWith: { state: true },
  };

  constructor() {
    super();
    this._config = { type: "custom:smart-reid-people-card" };
    this._filter = "everyone";
    this._sort = "recent";
    this._mode = "view";
    this._busy = false;
  }

  static getStubConfig(): PeopleCardConfig {
    return { type: "custom:smart-reid-people-card", filter: "everyone", sort: "recent", layout: "grid" };
  }

  static async getConfigElement(): Promise<HTMLElement> {
    return document.createElement("smart-reid-people-card-editor");
  }

  setConfig(config: PeopleCardConfig): void {
    if (!config || typeof config !== "object") throw new Error("Invalid configuration");
    if (config.filter && !["everyone", "present", "unknown"].includes(config.filter)) {
      throw new Error(`filter must be everyone, present or unknown (not ${config.filter})`);
    }
    if (config.layout && !["grid", "compact"].includes(config.layout)) {
      throw new Error(`layout must be grid or compact (not ${config.layout})`);
    }
    this._config = config;
    this._filter = config.filter ?? "everyone";
    this._sort = config.sort ?? "recent";
    this._resubscribe();
  }

  getCardSize(): number {
    return this._config.layout === "compact" ? 4 : 5;
  }

  getGridOptions(): Record<string, number> {
    return { columns: 12, min_columns: 6, rows: this._config.layout === "compact" ? 4 : 5, min_rows: 3 };
  }

  connectedCallback(): void {
    super.connectedCallback();
    if (this.hass) this._subscribe();
  }

  disconnectedCallback(): void {
    super.disconnectedCallback();
    this._unsubscribeNow();
  }

  protected willUpdate(changed: PropertyValues): void {
    if (changed.has("hass") && this.hass && this.hass !== this._subscribedHass && !this._unsubscribe) {
      this._subscribe();
    }
  }

  private _resubscribe(): void {
    this._unsubscribeNow();
    if (this.hass && this.isConnected) this._subscribe();
  }

  private _unsubscribeNow(): void {
    const pending = this._unsubscribe;
    this._unsubscribe = undefined;
    this._subscribedHass = undefined;
    pending?.then((stop) => stop()).catch(() => undefined);
  }

  private _subscribe(): void {
    if (!this.hass) return;
    this._subscribedHass = this.hass;
    const msg: Record<string, unknown> = { type: "smart_reid/people/subscribe", hours: this._config.hours ?? 24 };
    if (this._config.entry_id) msg.entry_id = this._config.entry_id;
    this._unsubscribe = this.hass.connection.subscribeMessage<PeopleAnswer>((answer) => {
      this._data = answer;
      this._error = undefined;
      if (this._selected) {
        this._selected = answer.people.find((p) => p.person_id === this._selected?.person_id) ?? this._selected;
      }
    }, msg);
    this._unsubscribe.catch((err: { code?: string; message?: string }) => {
      this._unsubscribe = undefined;
      this._error = err.code === "not_loaded" ? t(this.hass, "not_loaded") : t(this.hass, "error", { message: err.message ?? String(err) });
    });
  }

  // --- rendering ------------------------------------------------------------------------------

  protected render(): TemplateResult {
    const hass = this.hass;
    const offline = this._data?.servers.some((s) => !s.online);
    return html`
      <ha-card>
        <div class="header">
          <div class="title">${this._config.title ?? t(hass, "people_title")}</div>
          <div class="chips" role="group">
            ${(["everyone", "present", "unknown"] as PeopleFilter[]).map(
              (f) => html`<button class="chip" aria-pressed=${this._filter === f ? "true" : "false"}
                @click=${() => (this._filter = f)}>${t(hass, `filter_${f}`)}</button>`,
            )}
            <select class="chip sort" aria-label=${t(hass, "opt_sort")}
              @change=${(e: Event) => (this._sort = (e.target as HTMLSelectElement).value as PeopleSort)}>
              ${(["recent", "name", "visits"] as PeopleSort[]).map(
                (o) => html`<option value=${o} ?selected=${this._sort === o}>${t(hass, `sort_${o}`)}</option>`,
              )}
            </select>
          </div>
        </div>
        ${offline ? html`<div class="notice offline">${t(hass, "offline")}</div>` : nothing}
        ${this._error ? html`<div class="notice error">${this._error}</div>` : nothing}
        <div class="content">${this._renderPeople()}</div>
        ${this._selected ? this._renderDetail(this._selected) : nothing}
      </ha-card>
    `;
  }

  private _renderPeople(): TemplateResult {
    const hass = this.hass;
    if (!this._data) return html`<div class="empty">${this._error ? "" : t(hass, "loading")}</div>`;
    const people = selectPeople(this._data.people, {
      filter: this._filter,
      sort: this._sort,
      hours: this._config.hours,
      max: this._config.max_people,
    });
    if (!people.length) {
      const all = selectPeople(this._data.people, { hours: this._config.hours });
      return html`<div class="empty">${t(hass, all.length ? "nobody_filtered" : "nobody")}</div>`;
    }
    const compact = this._config.layout === "compact";
    return html`<div class=${compact ? "list" : "grid"}>
      ${people.map((p) => this._renderPerson(p, compact))}
    </div>`;
  }

  private _badges(p: PersonItem): TemplateResult {
    const hass = this.hass;
    return html`<span class="badge ${p.status}">${t(hass, p.status)}</span>${p.uncertain
        ? html` <span class="badge uncertain">${t(hass, "probably", { label: p.label })}</span>`
        : nothing}`;
  }

  private _where(p: PersonItem): string {
    const hass = this.hass;
    if (p.present && p.camera) return t(hass, "here_now", { camera: cameraName(p.camera) });
    if (p.last_seen == null) return t(hass, "never_seen");
    const camera = cameraName(p.camera ?? p.cameras[p.cameras.length - 1] ?? "");
    return t(hass, "last_seen", { camera, when: sinceText(hass, p.last_seen) }).replace(/^ · /, "");
  }

  private _visitsToday(p: PersonItem): string {
    if (p.visits_today === 0) return t(this.hass, "no_visits_today");
    return p.visits_today === 1 ? t(this.hass, "visit_today") : t(this.hass, "visits_today", { n: p.visits_today });
  }

  private _picture(p: { thumbnail_url: string | null; label: string | null }, size: string): TemplateResult {
    return p.thumbnail_url
      ? html`<img class="pic" style="width:${size};height:calc(${size} * 2)" src=${p.thumbnail_url} alt=${p.label ?? ""} loading="lazy" />`
      : html`<div class="pic placeholder" style="width:${size};height:calc(${size} * 2)" aria-hidden="true">?</div>`;
  }

  private _renderPerson(p: PersonItem, compact: boolean): TemplateResult {
    const open = () => this._open(p);
    if (compact) {
      return html`<button class="plain person row-item" data-person=${p.person_id} @click=${open}>
        ${this._picture(p, "28px")}
        <div class="person-text">
          <div class="name">${p.label} ${this._badges(p)}</div>
          <div class="muted">${this._where(p)} · ${this._visitsToday(p)}</div>
        </div>
        ${p.present ? html`<span class="dot" title="present"></span>` : nothing}
      </button>`;
    }
    return html`<button class="plain person tile ${p.present ? "present" : ""}" data-person=${p.person_id} @click=${open}>
      <div class="tile-pic">${this._picture(p, "100%")}</div>
      <div class="name">${p.label}</div>
      <div>${this._badges(p)}</div>
      <div class="muted">${this._where(p)}</div>
      <div class="muted">${this._visitsToday(p)}</div>
    </button>`;
  }

  // --- detail view ----------------------------------------------------------------------------

  private async _open(p: PersonItem): Promise<void> {
    this._selected = p;
    this._mode = "view";
    this._actionError = undefined;
    this._history = undefined;
    this._mergeWith = undefined;
    if (!this.hass) return;
    try {
      const answer = await this.hass.callWS<VisitsAnswer>({
        type: "smart_reid/visits",
        entry_id: p.entry_id,
        person_id: p.person_id,
        start: Date.now() / 1000 - 7 * 86400,
        limit: 20,
      });
      if (this._selected?.person_id === p.person_id) this._history = answer.visits;
    } catch (err) {
      if (this._selected?.person_id === p.person_id) this._history = [];
    }
  }

  private _close(): void {
    this._selected = undefined;
  }

  private async _call(service: string, data: Record<string, unknown>, closeAfter = false): Promise<void> {
    if (!this.hass || !this._selected) return;
    this._busy = true;
    this._actionError = undefined;
    try {
      await this.hass.callService("smart_reid", service, { config_entry_id: this._selected.entry_id, ...data });
      this._mode = "view";
      if (closeAfter) this._close();
    } catch (err) {
      this._actionError = (err as { message?: string }).message ?? String(err);
    } finally {
      this._busy = false;
    }
  }

  private _renderDetail(p: PersonItem): TemplateResult {
    const hass = this.hass;
    const admin = hass?.user?.is_admin ?? false;
    const pictures = latestPerCamera(this._history ?? []);
    return html`<div class="dialog-backdrop" @click=${(e: Event) => e.target === e.currentTarget && this._close()}>
      <div class="dialog" role="dialog" aria-label=${p.label}>
        <div class="row">
          ${this._picture(p, "48px")}
          <div>
            <h2>${p.label}</h2>
            <div>${this._badges(p)}</div>
            <div class="muted">${this._where(p)} · ${this._visitsToday(p)}</div>
          </div>
          <button class="action close" @click=${this._close}>${t(hass, "close")}</button>
        </div>
        ${pictures.length
          ? html`<h3>${t(hass, "recent_pictures")}</h3>
              <div class="shots">
                ${pictures.map(
                  (v) => html`<figure>
                    <img class="pic" src=${v.snapshot_url ?? ""} alt=${cameraName(v.last_camera)} loading="lazy" />
                    <figcaption class="muted">${cameraName(v.last_camera ?? v.first_camera)}
                      ${v.started_at ? clockTime(hass, v.started_at) : ""}</figcaption>
                  </figure>`,
                )}
              </div>`
          : nothing}
        <h3>${t(hass, "visit_history")}</h3>
        ${this._history === undefined
          ? html`<div class="muted">${t(hass, "loading")}</div>`
          : this._history.length
            ? html`<ul class="history">
                ${this._history.map((v) => {
                  const d = visitDuration(v);
                  return html`<li>
                    <span>${v.started_at ? sinceText(hass, v.started_at) : ""}</span>
                    <span class="muted">${pathText(hass, v)}${d != null ? ` · ${durationText(hass, d)}` : ""}</span>
                    ${v.risk?.level ? html`<span class="badge level ${v.risk.level}">${t(hass, `risk_${v.risk.level}`)}</span>` : nothing}
                  </li>`;
                })}
              </ul>`
            : html`<div class="muted">${t(hass, "no_visits")}</div>`}
        ${admin ? this._renderActions(p) : html`<div class="muted">${t(hass, "actions_admin_only")}</div>`}
        ${this._actionError ? html`<div class="error-text" role="alert">${this._actionError}</div>` : nothing}
      </div>
    </div>`;
  }

  private _renderActions(p: PersonItem): TemplateResult {
    const hass = this.hass;
    const busy = this._busy;
    if (this._mode === "rename") {
      return html`<form class="actions" @submit=${(e: Event) => {
        e.preventDefault();
        const input = this.renderRoot.querySelector<HTMLInputElement>("input.rename");
        const name = input?.value.trim() ?? "";
        if (name) void this._call("rename_person", { person_id: p.person_id, name });
      }}>
        <input class="text rename" aria-label=${t(hass, "name")} .value=${p.label} maxlength="64" />
        <button class="action primary" type="submit" ?disabled=${busy}>${t(hass, "save")}</button>
        <button class="action" type="button" @click=${() => (this._mode = "view")}>${t(hass, "cancel")}</button>
      </form>`;
    }
    if (this._mode === "forget") {
      return html`<div class="actions">
        <div>${t(hass, "forget_confirm", { label: p.label })}</div>
        <button class="action danger confirm-forget" ?disabled=${busy}
          @click=${() => this._call("forget_person", { person_id: p.person_id }, true)}>${t(hass, "confirm")}</button>
        <button class="action" @click=${() => (this._mode = "view")}>${t(hass, "cancel")}</button>
      </div>`;
    }
    if (this._mode === "merge") {
      const others = (this._data?.people ?? []).filter((o) => o.person_id !== p.person_id && o.entry_id === p.entry_id);
      const target = this._mergeWith;
      return html`<div>
        <div class="muted">${t(hass, "merge_pick")}</div>
        <div class="picker">
          ${others.map(
            (o) => html`<button class="plain pick ${target?.person_id === o.person_id ? "chosen" : ""}"
              data-person=${o.person_id} @click=${() => (this._mergeWith = o)}>
              ${this._picture(o, "40px")}<span>${o.label}</span></button>`,
          )}
        </div>
        <div class="actions">
          ${target
            ? html`<span>${t(hass, "merge_confirm", { from: p.label, into: target.label })}</span>
                <button class="action primary confirm-merge" ?disabled=${busy}
                  @click=${() => this._call("merge_persons", { person_id: target.person_id, from_person_id: p.person_id }, true)}>
                  ${t(hass, "confirm")}</button>`
            : nothing}
          <button class="action" @click=${() => (this._mode = "view")}>${t(hass, "cancel")}</button>
        </div>
      </div>`;
    }
    return html`<div class="actions">
      <button class="action rename" @click=${() => (this._mode = "rename")}>${t(hass, "rename")}</button>
      <button class="action household" ?disabled=${busy}
        @click=${() => this._call("mark_known", { person_id: p.person_id, known: !p.known })}>
        ${t(hass, p.known ? "unmark_household" : "mark_household")}</button>
      <button class="action merge" @click=${() => ((this._mode = "merge"), (this._mergeWith = undefined))}>${t(hass, "merge")}</button>
      <button class="action danger forget" @click=${() => (this._mode = "forget")}>${t(hass, "forget")}</button>
    </div>`;
  }

  static styles = [
    shared,
    css`
      .grid {
        display: grid;
        grid-template-columns: repeat(auto-fill, minmax(104px, 1fr));
        gap: var(--sr-gap);
      }
      .tile {
        display: flex;
        flex-direction: column;
        gap: 2px;
        border-radius: 10px;
        padding: 6px;
        border: 1px solid var(--sr-border);
        box-sizing: border-box;
        min-width: 0;
      }
      .tile.present { border-color: var(--primary-color); }
      .tile-pic { width: 100%; aspect-ratio: 1 / 2; max-height: 180px; overflow: hidden; border-radius: 6px; }
      .tile-pic .pic { height: 100% !important; }
      .tile .name, .person-text .name {
        font-weight: 500;
        overflow: hidden;
        text-overflow: ellipsis;
        white-space: nowrap;
      }
      .list { display: flex; flex-direction: column; gap: 6px; }
      .row-item { display: flex; align-items: center; gap: 10px; }
      .row-item .pic { border-radius: 4px; flex: none; }
      .person-text { min-width: 0; flex: 1; }
      .dot { width: 8px; height: 8px; border-radius: 50%; background: var(--primary-color); flex: none; }
      h3 { font-size: 15px; font-weight: 500; margin: 14px 0 6px; }
      .shots { display: flex; gap: 8px; overflow-x: auto; }
      .shots figure { margin: 0; flex: none; }
      .shots img { height: 120px; width: auto; max-width: 220px; border-radius: 6px; }
      .history { list-style: none; padding: 0; margin: 0; display: flex; flex-direction: column; gap: 4px; }
      .history li { display: flex; gap: 8px; flex-wrap: wrap; align-items: center; }
      .picker { display: grid; grid-template-columns: repeat(auto-fill, minmax(72px, 1fr)); gap: 8px; margin: 8px 0; }
      .pick { display: flex; flex-direction: column; align-items: center; gap: 2px; padding: 4px; border-radius: 8px; border: 2px solid transparent; font-size: 12px; }
      .pick.chosen { border-color: var(--primary-color); }
    `,
  ];
}

/** The newest visit per camera, for "recent pictures per camera". */
export function latestPerCamera(visits: VisitItem[]): VisitItem[] {
  const seen = new Set<string>();
  const out: VisitItem[] = [];
  for (const v of [...visits].sort((a, b) => (b.started_at ?? 0) - (a.started_at ?? 0))) {
    const camera = v.last_camera ?? v.first_camera ?? "";
    if (!v.snapshot_url || seen.has(camera)) continue;
    seen.add(camera);
    out.push(v);
  }
  return out;
}
