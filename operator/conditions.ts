/** Status conditions as the Kubernetes API conventions want them. */

interface WithConditions {
  conditions?: {
    type: string;
    status: string;
    lastTransitionTime: string;
    observedGeneration?: number;
  }[];
  observedGeneration?: number;
}

/**
 * Keeps a condition's lastTransitionTime while its status is unchanged from what is stored, and
 * stamps observedGeneration on the status and its conditions: a status rebuilt from the world
 * then equals the stored one whenever nothing really changed, so nothing is written.
 */
export function withStableTransitions<T extends WithConditions>(
  status: T,
  stored: WithConditions | undefined,
  generation: number | undefined,
): T {
  const conditions = status.conditions?.map((condition) => {
    const before = stored?.conditions?.find((c) => c.type === condition.type);
    const lastTransitionTime =
      before?.status === condition.status
        ? before.lastTransitionTime
        : condition.lastTransitionTime;
    return {
      ...condition,
      lastTransitionTime,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
    };
  });
  return {
    ...status,
    ...(conditions ? { conditions } : {}),
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
}
