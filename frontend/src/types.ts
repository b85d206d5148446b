// What the cards read from Home Assistant and from the integration's websocket API
// (custom_components/smart_reid/websocket_api.py).

export interface HassUser {
  id: string;
  name: string;
  is_admin: boolean;
}

export interface HomeAssistant {
  language: string;
  locale?: { language: string; time_format?: "language" | "system" | "12" | "24" };
  themes?: { darkMode?: boolean };
  user?: HassUser;
  connection: {
    subscribeMessage<T>(callback: (message: T) => void, msg: Record<string, unknown>): Promise<() => Promise<void>>;
  };
  callWS<T>(msg: Record<string, unknown>): Promise<T>;
  callService(domain: string, service: string, data: Record<string, unknown>): Promise<unknown>;
}

export type PersonStatus = "household" | "known" | "unknown";

export interface PersonItem {
  entry_id: string;
  person_id: string;
  label: string;
  named: boolean | null;
  known: boolean;
  status: PersonStatus;
  uncertain: { similarity: number; camera: string } | null;
  present: boolean;
  camera: string | null;
  cameras: string[];
  first_seen: number | null;
  last_seen: number | null;
  visit_count: number;
  visit_id: string | null;
  visits_today: number;
  thumbnail_url: string | null;
}

export interface ServerItem {
  entry_id: string;
  title: string;
  online: boolean;
  cameras: string[];
}

export interface PeopleAnswer {
  servers: ServerItem[];
  people: PersonItem[];
}

export type RiskLevel = "low" | "medium" | "high" | "critical";

export interface RiskReason {
  code: string;
  text: string;
  points: number;
}

export interface RiskItem {
  level: RiskLevel | null;
  score: number | null;
  reasons: RiskReason[] | null;
  final: boolean | null;
  source: string | null;
  summary: string | null;
  timestamp: number | null;
}

export interface PathStep {
  camera: string;
  at: number | null;
}

export interface VisitItem {
  entry_id: string;
  visit_id: string;
  person_id: string;
  label: string | null;
  known: boolean;
  is_new_identity: boolean;
  started_at: number | null;
  last_seen: number | null;
  ended_at: number | null;
  cameras: string[];
  first_camera: string | null;
  last_camera: string | null;
  sightings: number | null;
  snapshot_url: string | null;
  thumbnail_url: string | null;
  risk: RiskItem | null;
  path: PathStep[];
}

export interface VisitsAnswer {
  start: number;
  end: number;
  truncated: boolean;
  visits: VisitItem[];
  errors: string[];
}

export interface VisitsEvent {
  visit?: VisitItem;
  /** People renamed since (or first heard of): their current labels. */
  labels?: Record<string, string>;
  // reason "returning": the visit goes on as person_id's (visit_id = merged_visit_id);
  // otherwise merged_visit_id was a duplicate of visit_id.
  merged?: {
    person_id: string;
    merged_person_id: string;
    merged_visit_id: string | null;
    visit_id?: string | null;
    reason?: string;
    label?: string | null;
    known?: boolean;
  };
}

export type PeopleFilter = "everyone" | "present" | "unknown";
export type PeopleSort = "recent" | "name" | "visits";

export interface PeopleCardConfig {
  type: string;
  title?: string;
  entry_id?: string;
  filter?: PeopleFilter;
  sort?: PeopleSort;
  layout?: "grid" | "compact";
  hours?: number;
  max_people?: number;
}

export type VisitsPeriod = "today" | "24h" | "7d";

export interface VisitsCardConfig {
  type: string;
  title?: string;
  entry_id?: string;
  period?: VisitsPeriod;
  min_level?: RiskLevel;
  limit?: number;
  show_snapshots?: boolean;
}
