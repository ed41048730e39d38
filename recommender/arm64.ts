/**
 * arm64 (Graviton) compatibility: every image of the pod — init containers and sidecars too —
 * must offer linux/arm64. One image without it blocks the move and the reason names it; an
 * image whose platforms are not known gives Unknown, never NotRecommended. A hard amd64 pin
 * with arm64-capable images is Possible (the suggested patch removes the pin).
 */
import type { Arm64Result, ImagePlatforms } from './api/v1alpha1.ts';
import { ANNOTATION_ARM64, type ContainerFacts, type WorkloadFacts } from './facts.ts';
import { formatUSD, type PriceBook } from './pricing.ts';
import {
  clip,
  finding,
  listOf,
  notePatch,
  plural,
  result,
  verdictOf,
  type Finding,
} from './reasons.ts';
import { ownerFindings } from './owner.ts';
import { estimateCost, onArm64, pricingFindings } from './savings.ts';
import { ARCH_KEYS, allows, hardConstraint, preferredValues } from './scheduling.ts';

/** Requires that the suggested patch itself fixes. */
export const ARM64_FIXED_BY_PATCH: ReadonlySet<string> = new Set(['Amd64Pinned']);

export interface Arm64Evaluation {
  result: Arm64Result;
  actionable: boolean;
  /** It runs on arm64 although an image lacks arm64: the suggested patch moves it to amd64. */
  atRisk: boolean;
}

/** Digest pattern of the CRD (status.arm64.images[].digest). */
const DIGEST = /^[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const MAX_IMAGES = 64;

/** True when a platform list offers linux/arm64 (any variant, e.g. linux/arm64/v8). */
export function offersArm64(platforms: readonly string[]): boolean {
  return platforms.some((p) => p === 'linux/arm64' || p.startsWith('linux/arm64/'));
}

/** Platforms that describe runnable images (drops "unknown/unknown" attestation entries). */
function realPlatforms(platforms: readonly string[]): string[] {
  return platforms.filter((p) => !p.startsWith('unknown/'));
}

function roleName(c: ContainerFacts): string {
  return c.role === 'main'
    ? 'container'
    : c.role === 'init'
      ? 'init container'
      : 'sidecar container';
}

interface ImageScan {
  findings: Finding[];
  images: ImagePlatforms[];
  unknown: boolean;
  allMultiArch: boolean;
}

function scanImages(facts: WorkloadFacts, pinnedAmd64: boolean): ImageScan {
  const findings: Finding[] = [];
  const images: ImagePlatforms[] = [];
  const unknownImages: string[] = [];
  const unreadable: string[] = [];
  let blocked = false;
  for (const c of facts.template.containers) {
    const entry: ImagePlatforms = { container: clip(c.name, 253), image: clip(c.image, 1024) };
    const fact = facts.imagePlatforms[c.image];
    if (fact === undefined) {
      unknownImages.push(`${c.image} (${roleName(c)} ${c.name})`);
    } else if ('error' in fact) {
      entry.error = clip(fact.error, 1024);
      unreadable.push(`${c.image} (${roleName(c)} ${c.name}): ${fact.error}`);
    } else {
      if (fact.digest !== undefined && DIGEST.test(fact.digest) && fact.digest.length <= 256) {
        entry.digest = fact.digest;
      }
      entry.platforms = [...fact.platforms].slice(0, 64).map((p) => clip(p, 64));
      if (!offersArm64(fact.platforms)) {
        blocked = true;
        const real = realPlatforms(fact.platforms);
        const amd64Only = real.length > 0 && real.every((p) => p.startsWith('linux/amd64'));
        findings.push(
          finding(
            amd64Only ? 'ImageAmd64Only' : 'ImageWithoutArm64',
            'Blocks',
            `Image of ${roleName(c)} ${c.name} (${c.image}) offers only ${real.length > 0 ? listOf(real) : 'no platform'}${
              facts.kind !== 'DaemonSet'
                ? ''
                : pinnedAmd64
                  ? '; it is pinned to amd64 nodes, so Graviton nodes would run without this DaemonSet'
                  : '; as a DaemonSet it would fail on every Graviton node'
            }.`,
          ),
        );
      }
    }
    if (images.length < MAX_IMAGES) images.push(entry);
  }
  if (unknownImages.length > 0) {
    findings.push(
      finding(
        'ImagePlatformsUnknown',
        'Info',
        `The platforms of ${listOf(unknownImages)} are not known (not looked up, or not in the image-platforms file).`,
      ),
    );
  }
  if (unreadable.length > 0) {
    findings.push(
      finding(
        'ImagePlatformsUnreadable',
        'Info',
        `The registry did not tell the platforms of ${unreadable.join('; ')}.`,
      ),
    );
  }
  const unknown = unknownImages.length + unreadable.length > 0;
  const allMultiArch = !blocked && !unknown;
  if (allMultiArch) {
    const n = facts.template.containers.length;
    findings.push(
      finding(
        'AllImagesMultiArch',
        'Raises',
        n === 1
          ? 'Its image offers linux/arm64.'
          : `${n === 2 ? 'Both images' : `All ${n} images`} (init containers and sidecars included) offer linux/arm64.`,
        30,
      ),
    );
  }
  return { findings, images, unknown, allMultiArch };
}

function pinFindings(facts: WorkloadFacts): { findings: Finding[]; requiresArm64: boolean } {
  const findings: Finding[] = [];
  const hard = hardConstraint(facts.template, ARCH_KEYS);
  if (hard !== undefined && !allows(hard, 'arm64')) {
    findings.push(
      finding(
        'Amd64Pinned',
        'Requires',
        `Its ${hard.source} pins it to amd64 nodes; the pin has to go.`,
        10,
      ),
    );
  }
  if (preferredValues(facts.template, ARCH_KEYS).includes('amd64')) {
    findings.push(
      finding('PrefersAmd64', 'Lowers', 'A preferred node affinity favours amd64 nodes.', 10),
    );
  }
  const requiresArm64 =
    hard?.allowed !== undefined &&
    hard.allowed.length > 0 &&
    hard.allowed.every((a) => a === 'arm64');
  return { findings, requiresArm64 };
}

function notApplicable(code: string, message: string): Arm64Evaluation {
  return {
    result: result('NotApplicable', [finding(code, 'Info', message)], '0.00'),
    actionable: false,
    atRisk: false,
  };
}

/** Decides whether the workload should move to Graviton (arm64) nodes. */
export function evaluateArm64(facts: WorkloadFacts, book: PriceBook): Arm64Evaluation {
  if (!facts.policy.arm64.enabled) {
    return notApplicable(
      'DisabledByPolicy',
      `SavingsPolicy ${facts.policy.name ?? '(default)'} turns arm64 off for this workload.`,
    );
  }
  if (facts.annotations[ANNOTATION_ARM64] === 'never') {
    return notApplicable('OptedOut', `The workload is annotated ${ANNOTATION_ARM64}: "never".`);
  }
  if (facts.template.containers.length === 0) {
    // No image to read: nothing says the pods would run on arm64.
    const none = finding(
      'NoContainers',
      'Info',
      'Its pod template has no containers, so there is no image whose platforms could be read.',
    );
    return { result: result('Unknown', [none], '0.00'), actionable: false, atRisk: false };
  }
  const pins = pinFindings(facts);
  const pinned = pins.findings.some((f) => f.code === 'Amd64Pinned');
  const scan = scanImages(facts, pinned);
  const imageBlocked = scan.findings.some((f) => f.effect === 'Blocks');
  // An amd64-only DaemonSet needs its amd64 pin: the pin is not what stands in the way.
  const keepPin = !(facts.kind === 'DaemonSet' && imageBlocked);
  const findings = [
    ...ownerFindings(facts),
    ...scan.findings,
    ...pins.findings.filter((f) => keepPin || f.code !== 'Amd64Pinned'),
  ];
  const withImages = (r: Arm64Result): Arm64Result =>
    scan.images.length > 0 ? { ...r, images: scan.images } : r;

  const onArm = facts.pods.filter((p) => onArm64(p.node)).length;
  const allOnArm = facts.pods.length > 0 && onArm === facts.pods.length;
  if (onArm > 0 && !allOnArm) {
    findings.push(
      finding(
        'PartlyOnArm64',
        'Info',
        `${onArm} of ${facts.pods.length} running pods are already on arm64 nodes.`,
      ),
    );
  }
  if (!facts.cluster.architectures.includes('arm64') && facts.cluster.architectures.length > 0) {
    findings.push(
      finding(
        'NoArm64NodesYet',
        'Info',
        'No node in the cluster is arm64 yet: a Graviton node pool (or node group) must be added.',
      ),
    );
  }
  const blocked = findings.some((f) => f.effect === 'Blocks');

  if (facts.kind === 'DaemonSet') {
    // Nothing to move: a DaemonSet runs on every node. What matters is whether it can run on
    // Graviton nodes at all, since an amd64-only DaemonSet blocks adding them.
    const verdict = blocked
      ? 'NotRecommended'
      : scan.unknown
        ? 'Unknown'
        : pins.findings.some((f) => f.effect === 'Requires')
          ? 'Possible'
          : 'AlreadyOptimized';
    if (verdict === 'AlreadyOptimized') {
      findings.push(
        finding(
          'ReadyForGraviton',
          'Info',
          'As a DaemonSet it runs on every node; it does not stand in the way of Graviton nodes.',
        ),
      );
    }
    return {
      result: withImages(result(verdict, findings, '0.00')),
      actionable: false,
      atRisk: false,
    };
  }

  if ((allOnArm || pins.requiresArm64) && !blocked) {
    const message = allOnArm
      ? `All ${plural(facts.pods.length, 'running pod')} are on arm64 nodes.`
      : 'Its node constraints already require arm64 nodes.';
    return {
      result: withImages(
        result(
          'AlreadyOptimized',
          [finding('AlreadyOnArm64', 'Info', message), ...findings],
          '0.00',
        ),
      ),
      actionable: false,
      atRisk: false,
    };
  }
  if (imageBlocked && (onArm > 0 || pins.requiresArm64))
    return atRiskOnArm64(facts, book, onArm, findings, withImages);

  const estimate = estimateCost(facts, book, { spot: false, arm64: true });
  findings.push(...pricingFindings(facts, book, estimate));
  findings.push(...moneyFindings(estimate));
  const amd64Pods = facts.pods.length - onArm;
  const noEquivalent = amd64Pods > 0 && Object.keys(estimate.gravitonTypes).length === 0;
  const missingFact = scan.unknown || noEquivalent;
  const verdict = verdictOf(findings, missingFact);
  const savings =
    verdict === 'Recommended' || verdict === 'Possible'
      ? formatUSD(estimate.savingsMonthly)
      : '0.00';
  const afterPatch = findings.filter(
    (f) => !(f.effect === 'Requires' && ARM64_FIXED_BY_PATCH.has(f.code)),
  );
  const actionable =
    verdict === 'Recommended' ||
    (verdict === 'Possible' && verdictOf(afterPatch, missingFact) === 'Recommended');
  const explained = actionable ? notePatch(findings, ARM64_FIXED_BY_PATCH) : findings;
  return { result: withImages(result(verdict, explained, savings)), actionable, atRisk: false };
}

function moneyFindings(estimate: ReturnType<typeof estimateCost>): Finding[] {
  const out: Finding[] = [];
  const mapped = Object.entries(estimate.gravitonTypes).sort(([a], [b]) => a.localeCompare(b));
  if (estimate.noGravitonTypes.length > 0) {
    out.push(
      finding(
        'NoGravitonEquivalent',
        'Info',
        `kopek knows no priced Graviton type of the same size for ${listOf(estimate.noGravitonTypes)}.`,
      ),
    );
  }
  if (mapped.length === 0 || estimate.currentMonthly <= 0) return out;
  const pct = (1 - estimate.targetMonthly / estimate.currentMonthly) * 100;
  const mapping = mapped.map(([x86, arm]) => `${x86} → ${arm}`).join(', ');
  if (pct > 0.5) {
    out.push(
      finding(
        'GravitonCheaper',
        'Raises',
        `${mapping}: ${Math.round(pct)}% less for the same size.`,
        10,
      ),
    );
  } else {
    out.push(
      finding(
        'GravitonNotCheaper',
        'Blocks',
        `${mapping}: no cheaper for the same size, so the move saves nothing.`,
      ),
    );
  }
  return out;
}

/**
 * A workload on arm64 nodes (or required there) while an image lacks arm64: NotRecommended, the
 * risk said in a reason and the Ready condition, with what moving it to amd64 costs; the
 * suggested patch makes that move (patch.ts). Apply never makes it on its own.
 */
function atRiskOnArm64(
  facts: WorkloadFacts,
  book: PriceBook,
  onArm: number,
  findings: readonly Finding[],
  withImages: (r: Arm64Result) => Arm64Result,
): Arm64Evaluation {
  const move = estimateCost(facts, book, { spot: false, arm64: false, amd64: true });
  const cost = formatUSD(Math.max(0, move.targetMonthly - move.currentMonthly));
  const pods = plural(facts.pods.length, 'running pod');
  const where =
    onArm === 0
      ? 'Its node constraints require it to run'
      : onArm === facts.pods.length
        ? `All ${pods} run`
        : `${onArm} of ${pods} run`;
  const atRisk = finding(
    'AtRiskOnArm64',
    'Info',
    `${where} on arm64 nodes, which an image above lacks: the suggested patch moves it to amd64 nodes, for ${cost} USD more a month.`,
  );
  return {
    result: withImages({
      ...result('NotRecommended', [...findings, atRisk], '0.00'),
      moveToAmd64MonthlyCostUSD: cost,
    }),
    actionable: false,
    atRisk: true,
  };
}
