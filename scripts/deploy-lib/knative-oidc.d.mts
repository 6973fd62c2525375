export function audienceOf(apiVersion: string, kind: string, namespace: string, name: string): string;
export function childName(parent: string, suffix: string): string;
export function oidcServiceAccount(apiVersion: string, kind: string, name: string): string;
export function subjectOf(namespace: string, serviceAccount: string): string;
export interface EventPolicyObject {
  metadata: { name: string; namespace?: string | undefined };
  spec: {
    to?: { ref?: { apiVersion: string; kind: string; name: string } | undefined }[] | undefined;
    from?: {
      ref?: { apiVersion: string; kind: string; name: string; namespace?: string | undefined } | undefined;
      sub?: string | undefined;
    }[];
  };
}
export function sendersTo(
  policies: readonly EventPolicyObject[],
  target: { apiVersion: string; kind: string; name: string; namespace: string },
  defaultNamespace: string,
): string[];
