/**
 * One PLRC training step, top to bottom, as one GPU submission with no wait inside:
 *
 *   upload the batch (views A0, A1, B0; points; matched pairs)
 *   online encoder forward on A0            (backbone + heads, activations kept)
 *   momentum encoder forward on A1 and B0   (no backward)
 *   losses forward: image InfoNCE against the queue, point-level region contrast, affinity distillation
 *   losses backward → weighted gradients of the online heads' outputs
 *   online heads + backbone backward        (gradients into the flat gradient buffer)
 *   SGD on the online parameters, EMA into the momentum encoder
 *   queue write, distillation-centre update, loss scalars copied into the metrics ring
 *
 * Everything is bound once in {@link PlrcStep.build}; a step only uploads data, updates a few uniforms
 * (learning rate, EMA momentum, teacher temperature, queue pointer) and records the same dispatches.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { type Profiler, Recorder } from "../gpu/encoder.ts";
import type { Dispatch } from "../gpu/kernel.ts";
import { Tensor } from "../gpu/tensor.ts";
import type { PlrcBatch } from "../data/batch.ts";
import { axpy, scale } from "../kernels/elementwise.ts";
import { gatherBlocks, invertPermutation } from "../kernels/gather.ts";
import { Rng } from "../util/rng.ts";
import { emaUpdate, larsStep, sgdStep } from "../kernels/optim.ts";
import { buildDistillation } from "../losses/distill.ts";
import { buildImageContrast } from "../losses/image_contrast.ts";
import { buildPointContrast, pointInputsFromBatch } from "../losses/point_contrast.ts";
import { buildEncoder, createEncoderStore, type EncoderConfig, type EncoderGraph } from "../models/encoder.ts";
import type { ParamStore } from "../nn/params.ts";
import { MetricsRing, type StepScalars } from "./metrics_ring.ts";

/**
 * Training method: full PLRC; the image-level MoCo baseline; or the DetCon-style baseline (region
 * features averaged from the points sampled in each region, contrasted region against region).
 */
export type Method = "plrc" | "moco" | "detcon";

/** Everything the step needs to bind its kernels. */
export interface StepConfig {
  method: Method;
  encoder: EncoderConfig;
  batch: number;
  resolution: number;
  /** Images per ghost-BN group (the batch must be a multiple, or smaller: then one group). */
  bnGroupSize: number;
  /**
   * Shuffle-BN emulation: the key encoder sees each of its views in a random image order (so its BN
   * groups mix images differently from the query's), and its outputs are put back in order.
   */
  shuffleBn?: boolean;
  regions: number;
  points: number;
  weights: { image: number; point: number; distill: number };
  temperatures: { image: number; point: number; pointBase: number; student: number; teacher: number };
  queueSize: number;
  affinityScale: number;
  centerMomentum: number;
  /** Upper bound of matched pairs per image (the pair list is truncated beyond it). */
  maxPairsPerImage: number;
  /** SGD; with `lars`, the per-tensor LARS trust ratio (coefficient `larsTrust`) on weights. */
  optim: { lr: number; momentum: number; weightDecay: number; nesterov: boolean; lars?: boolean; larsTrust?: number };
  ema: number;
  seed: number;
}

/** Per-step values that change with the schedules. */
export interface StepSchedule {
  lr: number;
  ema: number;
  teacherTemperature: number;
}

/** Names of the scalars read back per step, in ring order. */
export const STEP_SCALARS = ["loss_image", "loss_point", "loss_distill"] as const;

/** The bound step. */
export class PlrcStep {
  /** Dispatches in recording order (for profiling by family). */
  readonly dispatches: Dispatch[] = [];
  /** The weighted combination of the loss gradients into the online heads' output gradients. */
  gradDispatches: Dispatch[] = [];
  #queuePtr = 0;
  #shuffleOrder: Tensor[] = [];

  private constructor(
    readonly gpu: Gpu,
    readonly cfg: StepConfig,
    readonly online: ParamStore,
    readonly momentum: ParamStore,
    readonly q: EncoderGraph,
    readonly kA1: EncoderGraph,
    readonly kB0: EncoderGraph,
    readonly losses: {
      image: Awaited<ReturnType<typeof buildImageContrast>>;
      point: Awaited<ReturnType<typeof buildPointContrast>> | null;
      distill: Awaited<ReturnType<typeof buildDistillation>> | null;
    },
    readonly sgd: Dispatch,
    readonly emaDispatch: Dispatch,
    readonly ring: MetricsRing,
    readonly lossTensors: Tensor[],
    readonly tensors: Tensor[],
  ) {}

  /** Binds every kernel of the step for `cfg`. */
  static async build(gpu: Gpu, cfg: StepConfig): Promise<PlrcStep> {
    const B = cfg.batch, R = cfg.resolution;
    const groups = Math.max(1, Math.floor(B / cfg.bnGroupSize));
    if (B % groups) throw new Error(`batch ${B} does not split into ghost-BN groups of ${cfg.bnGroupSize}`);
    const online = createEncoderStore(gpu, cfg.encoder, cfg.seed);
    const momentum = createEncoderStore(gpu, cfg.encoder, cfg.seed);
    // the momentum encoder starts as a copy of the online one
    const fo = online.flat(), fm = momentum.flat();
    const copy = new Recorder(gpu).copy(fo.params.buffer, 0, fm.params.buffer, 0, fo.params.byteLength);
    copy.copy(fo.stats.buffer, 0, fm.stats.buffer, 0, fo.stats.byteLength);
    copy.submit();

    const enc = (store: ParamStore, backward: boolean) =>
      buildEncoder(gpu, store, cfg.encoder, { batch: B, resolution: R, backward, bnGroups: groups });
    const q = await enc(online, true);
    const kA1 = await enc(momentum, false);
    const kB0 = await enc(momentum, false);
    const { h, w } = q;
    const D = cfg.encoder.heads.pointDim;
    const tensors: Tensor[] = [];
    const alloc = (shape: number[], name: string) => {
      const t = Tensor.empty(gpu, shape, "f32", name);
      tensors.push(t);
      return t;
    };
    // shuffle-BN: key outputs come back in shuffled image order; gather them into image order
    const shuffle = !!cfg.shuffleBn;
    const unshuffle: Dispatch[] = [];
    const order: Tensor[] = [];
    const keyOut = async (t: Tensor, which: 0 | 1) => {
      if (!shuffle) return t;
      const y = alloc([...t.shape], `${t.name} (image order)`);
      unshuffle.push(await gatherBlocks(gpu, t, order[which], y, B));
      return y;
    };
    if (shuffle) {
      for (const v of ["A1", "B0"]) {
        const o = Tensor.empty(gpu, [B], "u32", `shuffle order ${v}`);
        o.upload(Uint32Array.from({ length: B }, (_, i) => i));
        tensors.push(o);
        order.push(o);
      }
    }
    const kA1y1 = await keyOut(kA1.heads.y1, 0), kA1z = await keyOut(kA1.heads.z, 0);
    const kB0z = await keyOut(kB0.heads.z, 1), kB0l = await keyOut(kB0.heads.logits, 1);

    const image = await buildImageContrast(gpu, {
      y1A0: q.heads.y1,
      y1A1: kA1y1,
      batch: B,
      hw: h * w,
      dim: D,
      queueSize: cfg.queueSize,
      temperature: cfg.temperatures.image,
      seed: cfg.seed,
    });
    const point = cfg.method !== "moco"
      ? await buildPointContrast(gpu, {
        y1A0: q.heads.y1,
        y1A1: kA1y1,
        batch: B,
        h,
        w,
        dim: D,
        pointsPerImage: cfg.regions * cfg.points,
        temperature: cfg.temperatures.point,
        scale: cfg.temperatures.point / cfg.temperatures.pointBase,
        pool: cfg.method === "detcon" ? cfg.points : 1,
      })
      : null;
    const distill = cfg.method === "plrc"
      ? await buildDistillation(gpu, {
        zq: q.heads.z,
        lq: q.heads.logits,
        zt: kB0z,
        lt: kB0l,
        za: kA1z,
        batch: B,
        h,
        w,
        S: R / 4,
        dimZ: cfg.encoder.heads.bottleneck,
        K: cfg.encoder.heads.prototypes,
        maxPairs: cfg.maxPairsPerImage * B,
        tauS: cfg.temperatures.student,
        tauT: cfg.temperatures.teacher,
        alpha: cfg.affinityScale,
        centerMomentum: cfg.centerMomentum,
      })
      : null;

    // weighted loss gradients into the online heads' output gradients
    const wt = cfg.weights;
    const gradDispatches: Dispatch[] = [await scale(gpu, image.dY1, wt.image, q.heads.dY1!)];
    if (point) gradDispatches.push(await axpy(gpu, wt.point, point.dY1, q.heads.dY1!));
    if (distill) {
      gradDispatches.push(await scale(gpu, distill.dZq, wt.distill, q.heads.dZ!));
      gradDispatches.push(await scale(gpu, distill.dLq, wt.distill, q.heads.dLogits!));
    } else {
      q.heads.dZ!.fill(0);
      q.heads.dLogits!.fill(0);
    }

    const f = online.flat();
    let sgd: Dispatch;
    const optimDispatches: Dispatch[] = [];
    if (cfg.optim.lars) {
      const segments = [...online.entries.values()]
        .filter((e) => e.spec.kind !== "running_mean" && e.spec.kind !== "running_var")
        .map((e) => ({
          offset: e.offset,
          numel: e.numel,
          adapt: e.spec.kind === "conv" || e.spec.kind === "linear_weight",
        }));
      const l = await larsStep(gpu, f.params, f.grads, f.momentum, segments, {
        ...cfg.optim,
        eta: cfg.optim.larsTrust ?? 0.001,
      });
      tensors.push(...l.tensors);
      optimDispatches.push(...l.dispatches);
      sgd = l.dispatches[l.dispatches.length - 1];
    } else {
      sgd = await sgdStep(gpu, f.params, f.grads, f.momentum, f.wdMask, cfg.optim);
      optimDispatches.push(sgd);
    }
    const emaDispatch = await emaUpdate(gpu, momentum.flat().params, f.params, cfg.ema);
    const zero = alloc([1], "zero loss");
    zero.fill(0);
    const lossTensors = [image.loss, point?.loss ?? zero, distill?.loss ?? zero];
    const ring = new MetricsRing(gpu, lossTensors);
    const step = new PlrcStep(
      gpu,
      cfg,
      online,
      momentum,
      q,
      kA1,
      kB0,
      { image, point, distill },
      sgd,
      emaDispatch,
      ring,
      lossTensors,
      tensors,
    );
    step.gradDispatches = gradDispatches;
    step.#shuffleOrder = order;
    step.dispatches.push(
      ...q.forward,
      ...kA1.forward,
      ...kB0.forward,
      ...unshuffle,
      ...image.forward,
      ...(point?.forward ?? []),
      ...(distill?.forward ?? []),
      ...image.backward,
      ...(point?.backward ?? []),
      ...(distill?.backward ?? []),
      ...gradDispatches,
      ...q.backward,
      ...optimDispatches,
      emaDispatch,
      ...image.enqueue,
      ...(distill?.centerUpdate ?? []),
    );
    return step;
  }

  /**
   * Uploads one batch (views, points, pairs). With shuffle-BN the key views go up in a random image order
   * drawn from the seed and `stepIndex` (so resume stays exact).
   */
  upload(b: PlrcBatch, stepIndex = 0): void {
    this.q.input.upload(b.viewA0);
    if (this.#shuffleOrder.length) {
      const B = this.cfg.batch, per = b.viewA1.length / B;
      const rng = Rng.derive(this.cfg.seed ^ 0x5bf1, stepIndex);
      const views: [Float32Array, Tensor][] = [[b.viewA1, this.kA1.input], [b.viewB0, this.kB0.input]];
      views.forEach(([view, input], k) => {
        const perm = rng.shuffle(Array.from({ length: B }, (_, i) => i)); // slot j holds image perm[j]
        const shuffled = new Float32Array(view.length);
        perm.forEach((img, j) => shuffled.set(view.subarray(img * per, (img + 1) * per), j * per));
        input.upload(shuffled);
        this.#shuffleOrder[k].upload(invertPermutation(perm)); // image i sits in slot inv[i]
      });
    } else {
      this.kA1.input.upload(b.viewA1);
      this.kB0.input.upload(b.viewB0);
    }
    if (this.losses.point) this.losses.point.upload(pointInputsFromBatch(b, this.q.h, this.q.w));
    if (this.losses.distill) {
      const max = this.cfg.maxPairsPerImage * this.cfg.batch;
      const n = Math.min(b.pairA.length, max);
      this.losses.distill.upload({
        pairA: b.pairA.subarray(0, n),
        pairB: b.pairB.subarray(0, n),
        pairImage: b.pairImage.subarray(0, n),
      });
    }
  }

  /**
   * Records and submits one step. Returns the loss scalars of an earlier step when the metrics ring
   * comes round (no wait for the current one).
   */
  async run(step: number, s: StepSchedule, profiler: Profiler | null = null): Promise<StepScalars | null> {
    this.sgd.setParams({ lr: s.lr });
    this.emaDispatch.setParams({ m: s.ema });
    this.losses.distill?.setTeacherTemperature(s.teacherTemperature);
    this.losses.image.setPointer(this.#queuePtr);
    this.#queuePtr = (this.#queuePtr + this.cfg.batch) % this.cfg.queueSize;
    // with a profiler each dispatch gets its own timed pass: slower, same results
    const rec = new Recorder(this.gpu, profiler);
    const old = await this.ring.begin(rec);
    rec.runAll(this.dispatches);
    this.ring.end(rec, step);
    rec.submit();
    this.ring.afterSubmit();
    return old;
  }

  /** The ring position of the queue (saved in checkpoints). */
  get queuePointer(): number {
    return this.#queuePtr;
  }
  set queuePointer(p: number) {
    this.#queuePtr = p;
  }

  /** Frees every GPU tensor of the step. */
  dispose(): void {
    for (const g of [this.q, this.kA1, this.kB0]) g.dispose();
    for (const l of [this.losses.image, this.losses.point, this.losses.distill]) {
      for (const t of l?.tensors ?? []) t.dispose();
    }
    for (const t of this.tensors) t.dispose();
    this.ring.destroy();
  }
}
