/**
 * The networks: the ResNet backbone (its plan, parameter specs, initialisation and recorded forward/backward
 * graph), the PLRC heads, the encoder that joins them, and the parameter store that holds their weights on
 * the GPU.
 *
 * @example Parameters of a narrow ResNet-18
 * ```ts
 * import { resnetOutChannels, resnetSpecs } from "./mod.ts";
 *
 * const cfg = { depth: 18, width: 0.125 } as const;
 * const count = resnetSpecs(cfg).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
 * console.log(count, resnetOutChannels(cfg));
 * ```
 *
 * @module
 */
export {
  gpuShape,
  hwioToOihw,
  isTrainable,
  oihwToHwio,
  type ParamEntry,
  type ParamKind,
  type ParamSpec,
  ParamStore,
} from "../nn/params.ts";
export {
  type BlockPlan,
  buildResNet,
  type ConvUnit,
  initResNet,
  lastBnNames,
  type ResNetBuildOptions,
  type ResNetConfig,
  type ResNetGraph,
  resnetOutChannels,
  resnetPlan,
  resnetSpecs,
  resnetWidths,
} from "./resnet.ts";
export {
  BACKBONE_PREFIX,
  buildEncoder,
  createEncoderStore,
  type EncoderConfig,
  type EncoderGraph,
  headsConfig,
} from "./encoder.ts";
export {
  buildHeads,
  type HeadsBuildOptions,
  type HeadsConfig,
  type HeadsGraph,
  headSpecs,
  initHeads,
} from "./heads.ts";
