/** The API answers the views read (the capabilities' zod view schemas, as JSON). */
export interface DeviceView {
  id: string;
  name?: string;
  type?: string;
  tags: string[];
  metadata: Record<string, unknown>;
  status: 'active' | 'disabled';
  version: number;
  createdAt: string;
  updatedAt: string;
  credentialRotatedAt: string;
}

export interface PresenceView {
  deviceId: string;
  status: 'online' | 'offline' | 'unknown';
  since: string | null;
  lastSeen: string | null;
}

export interface CommandView {
  id: string;
  deviceId: string;
  name: string;
  params?: unknown;
  status: string;
  createdAt: string;
  updatedAt: string;
  attempts: number;
  result?: unknown;
  error?: unknown;
  history: { status: string; at: string; attempt?: number }[];
}

export interface AlertView {
  id: string;
  ruleId: string;
  deviceId: string;
  metric: string;
  comparison: string;
  threshold: number;
  severity: string;
  status: 'active' | 'cleared';
  raisedAt: string;
  raisedValue: number | null;
  clearedAt: string | null;
  acknowledgedAt: string | null;
  acknowledgedBy: string | null;
}

export interface DeadLetterView {
  id: string;
  status: 'pending' | 'replayed';
  event: Record<string, unknown> & { id: string; type: string; source: string; subject?: string };
  error: { destination: string | null; code: number | null; text?: string };
  deadLetterCount: number;
  firstDeadLetteredAt: string;
  lastDeadLetteredAt: string;
  replayCount: number;
}

export interface Page<T> {
  items: T[];
  nextCursor?: string | null;
  next?: string | null;
}
