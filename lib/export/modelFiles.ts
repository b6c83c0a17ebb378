// The model-folder reader/writer lives in lib/models (loading backbones and training checkpoints
// need it, and a stage never imports a later one); export keeps its old import path.
export { ModelFileError, MODEL_JSON_FILE, WEIGHTS_BIN_FILE, createFsSaveHandler, saveLayersModelToDir, readModelArtifactsFromDir, loadLayersModelFromDir } from "../models/modelFiles.js";
