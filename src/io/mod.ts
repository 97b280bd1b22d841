/**
 * Files: safetensors (read, write, encode, decode), PyTorch `.pth` checkpoints (zip + pickle), and the
 * backbone exports to torchvision, detectron2 and mmdetection layouts, with import of a torchvision
 * backbone as a starting point.
 *
 * @example A safetensors round trip in memory
 * ```ts
 * import { decodeSafetensors, encodeSafetensors, toFloat32 } from "./mod.ts";
 *
 * const bytes = encodeSafetensors({ w: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) } });
 * const back = decodeSafetensors(bytes);
 * console.log(toFloat32(back.tensors.get("w")!));
 * ```
 *
 * @module
 */
export {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  readSafetensorsMetadata,
  SafetensorsError,
  type StDType,
  type StInput,
  type StTensor,
  toFloat32,
  toInt32,
  writeSafetensors,
} from "./safetensors.ts";
export {
  decodePth,
  encodePth,
  type PthData,
  type PthDType,
  PthError,
  type PthFile,
  PthTensor,
  type PthValue,
  readPth,
  writePth,
} from "./torch_pth.ts";
export type { ZipEntry } from "./zip.ts";
export {
  EXPORT_FORMATS,
  ExportError,
  type ExportFormat,
  type ExportOptions,
  type ExportResult,
  type HostTensor,
  torchvisionStateDict,
  writeExport,
} from "../export/export.ts";
export { type ImportedBackbone, ImportError, readTorchvisionBackbone, torchvisionBackbone } from "../export/import.ts";
